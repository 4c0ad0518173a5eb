import { Counter, Gauge, type Registry } from "prom-client";
import type { DeliveryResult, Notifier, NotifyObserver } from "../service/notify.js";

/**
 * Returns the outbound notifications' Prometheus metrics on `registry` — deliveries by webhook
 * and result, and each webhook's queue — as the notifier's observer; `notifier` is read at
 * scrape time for the queue depth.
 */
export function createNotifyMetrics(registry: Registry, notifier: () => Notifier | undefined): NotifyObserver {
  const deliveries = new Counter({
    name: "rollgate_notify_deliveries_total",
    help: "Outbound notifications by webhook and result: ok (delivered), failed (given up, or refused with a 4xx), retried (an attempt that failed and is retried), dropped (the queue was full).",
    labelNames: ["webhook", "result"] as const,
    registers: [registry],
  });
  new Gauge({
    name: "rollgate_notify_queue_depth",
    help: "Outbound notifications waiting per webhook (the one being sent included).",
    labelNames: ["webhook"] as const,
    registers: [registry],
    collect() {
      for (const s of notifier()?.stats() ?? []) this.set({ webhook: s.name }, s.queued + (s.inFlight ? 1 : 0));
    },
  });
  return {
    delivery(webhook: string, result: DeliveryResult) {
      deliveries.labels(webhook, result).inc();
    },
  };
}
