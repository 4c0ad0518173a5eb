/**
 * ANSI colours for the CLI, on only when writing to a terminal (and NO_COLOR is unset), or when
 * FORCE_COLOR asks for them.
 */

/** A function that wraps text in one colour, or leaves it alone when colours are off. */
export type Paint = (text: string) => string;

/** The colours the CLI uses. */
export interface Palette {
  readonly enabled: boolean;
  readonly green: Paint;
  readonly yellow: Paint;
  readonly red: Paint;
  readonly cyan: Paint;
  readonly dim: Paint;
  readonly bold: Paint;
}

/** Returns true when output to a stream should be coloured. */
export function colorsWanted(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== "0") return true;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return false;
  return stream.isTTY === true;
}

const wrap =
  (open: number, close: number): Paint =>
  (text) =>
    `\u001b[${open}m${text}\u001b[${close}m`;

/** Returns a palette, plain when `enabled` is false. */
export function palette(enabled: boolean): Palette {
  const plain: Paint = (t) => t;
  return {
    enabled,
    green: enabled ? wrap(32, 39) : plain,
    yellow: enabled ? wrap(33, 39) : plain,
    red: enabled ? wrap(31, 39) : plain,
    cyan: enabled ? wrap(36, 39) : plain,
    dim: enabled ? wrap(2, 22) : plain,
    bold: enabled ? wrap(1, 22) : plain,
  };
}
