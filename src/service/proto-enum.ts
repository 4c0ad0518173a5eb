/**
 * Two-way conversions between a generated protobuf enum and the domain's string union, from one
 * table the compiler checks in both directions (after Temporal's `makeProtoEnumConverters`).
 *
 * The table is keyed by every value of the proto enum, so a value added to the .proto fails the
 * build until it is mapped (to a domain value, or to `undefined` for one the domain has no word
 * for, like `*_UNSPECIFIED`). The reverse direction is derived from the same table; declaring the
 * result as `ProtoEnumConverters<ProtoEnum, DomainUnion>` also fails the build when a domain value
 * has no proto value (the `toProto` parameter would be narrower than the union) or when the table
 * names a value the domain does not have.
 */

/** The conversions of one enum: to the wire and back. */
export interface ProtoEnumConverters<P extends number, D extends string> {
  /** Returns the wire value of a domain value. */
  readonly toProto: (d: D) => P;
  /** Returns the domain value of a wire value, or undefined for one without a domain value (`*_UNSPECIFIED`, or a number this build does not know). */
  readonly fromProto: (p: P) => D | undefined;
}

/**
 * Returns the converters of a proto enum from a table that maps each of its values to a domain
 * value or to `undefined`. `names` is the generated enum object, used to name the values in the
 * error thrown when two proto values claim one domain value (the reverse would be ambiguous).
 */
export function protoEnumConverters<E extends Record<keyof E, string | number>, const T extends { readonly [K in E[keyof E] & number]: string | undefined }>(
  names: E,
  table: T,
): ProtoEnumConverters<E[keyof E] & number, Exclude<T[keyof T], undefined>> {
  type P = E[keyof E] & number;
  type D = Exclude<T[keyof T], undefined>;
  const forward = new Map<number, D>();
  const reverse = new Map<D, P>();
  for (const [key, value] of Object.entries(table) as [string, D | undefined][]) {
    if (value === undefined) continue;
    const p = Number(key) as P;
    const taken = reverse.get(value);
    if (taken !== undefined) {
      const name = (n: number) => String((names as Record<number, unknown>)[n] ?? n);
      throw new Error(`proto enum values ${name(taken)} and ${name(p)} both map to "${value}"`);
    }
    forward.set(p, value);
    reverse.set(value, p);
  }
  return {
    toProto: (d) => {
      const p = reverse.get(d);
      // Unreachable for callers the compiler checked; a cast value gets a clear error, not 0.
      if (p === undefined) throw new Error(`no proto value for "${d}"`);
      return p;
    },
    fromProto: (p) => forward.get(p),
  };
}
