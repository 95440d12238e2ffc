import type * as Prometheus from "prom-client";

// prom-client's own modules, one by one: its index also loads the Pushgateway (http, zlib),
// the cluster aggregator and the default process metrics (perf_hooks, v8), none used here:
// ≈12 MB of the proxy thread's memory and ≈30 ms of its start-up (bench/footprint.ts).
const Registry: typeof Prometheus.Registry = require("prom-client/lib/registry");
const Counter: typeof Prometheus.Counter = require("prom-client/lib/counter");
const Gauge: typeof Prometheus.Gauge = require("prom-client/lib/gauge");

export type UpstreamErrorKind = "refused" | "timeout" | "reset";

const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;

/**
 * The methods counted under their own name: HTTP's (RFC 9110, PATCH, QUERY) and WebDAV's. A
 * client may send any token as a method, and each new label value is a series kept for the
 * process's life: every other method is counted as "other".
 */
const NAMED_METHODS = new Set([
  "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY",
  "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "REPORT", "SEARCH",
]);

export interface MetricSources {
  /** WebSockets relayed right now. */
  openWebSockets(): number;
  /** Times the auth worker died and was replaced. */
  authWorkerRestarts(): number;
}

/**
 * The gateway's Prometheus metrics, in a registry of its own (no process-wide default
 * registry: two gateways in one process, as in tests, count separately).
 *
 * What changes per request is counted in plain numbers and handed to prom-client at scrape
 * time (`collect`), which also formats the text. prom-client's own `inc(labels)` and
 * `observe(labels, value)` validate and hash the label object on every call: with the
 * in-flight gauge, ≈1.5 µs of each request's ≈26 µs (bench/ladder.ts's metrics rung). The
 * output is the same series prom-client would have written (tests/metrics.test.ts compares).
 */
export function createMetrics(sources: MetricSources) {
  const registry = new Registry();

  // route → method → count per status class (index 1–5: 1xx–5xx).
  const answered = new Map<string, Map<string, number[]>>();
  new Counter({
    name: "authgate_http_requests_total",
    help: "Requests answered, by route (its name in the route table; auth for Better Auth, other for the rest), method (other for one neither HTTP nor WebDAV defines) and status class.",
    labelNames: ["route", "method", "status"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [route, methods] of answered) {
        for (const [method, classes] of methods) {
          classes.forEach((count, index) => count > 0 && this.inc({ route, method, status: `${index}xx` }, count));
        }
      }
    },
  });

  // route → counts per bucket (not cumulative; the last slot: above every bound) and their sum.
  const durations = new Map<string, Durations>();
  registry.registerMetric(durationHistogram(durations) as never);

  // Counted in a plain number and read at scrape time, like the rest.
  let inFlight = 0;
  new Gauge({
    name: "authgate_http_requests_in_flight",
    help: "Requests being handled (until their response headers).",
    registers: [registry],
    collect() {
      this.set(inFlight);
    },
  });
  const upstreamErrors = countedByLabel(registry, "authgate_upstream_errors_total", "Backend failures before a response: connection refused, header timeout, connection reset.", "kind");
  const sessionCache = countedByLabel(registry, "authgate_session_cache_total", "Session lookups by outcome: hit (answered from memory) or miss (asked the auth worker).", "result");
  const configReloads = countedByLabel(registry, "authgate_config_reloads_total", "Re-reads of CONFIG_FILE (SIGHUP), by result: ok (the new table serves) or error (the old one stays).", "result");
  new Counter({
    name: "authgate_auth_worker_restarts_total",
    help: "Times the auth worker (Better Auth and the database) died and was replaced.",
    registers: [registry],
    collect() {
      this.reset();
      const restarts = sources.authWorkerRestarts();
      if (restarts > 0) this.inc(restarts);
    },
  });
  new Gauge({
    name: "authgate_websockets_open",
    help: "WebSockets relayed right now.",
    registers: [registry],
    collect() {
      this.set(sources.openWebSockets());
    },
  });

  return {
    registry,
    requestStarted: () => void inFlight++,
    /** `route`: a route's name, "auth" (Better Auth) or "other" (the gateway's own paths, and requests refused before matching). */
    requestAnswered(route: string, method: string, status: number, seconds: number) {
      inFlight--;
      let methods = answered.get(route);
      if (!methods) answered.set(route, (methods = new Map()));
      const named = NAMED_METHODS.has(method) ? method : "other";
      let classes = methods.get(named);
      if (!classes) methods.set(named, (classes = [0, 0, 0, 0, 0, 0]));
      classes[Math.min(Math.max(Math.floor(status / 100), 1), 5)]!++;
      let duration = durations.get(route);
      if (!duration) durations.set(route, (duration = { buckets: new Array(DURATION_BUCKETS.length + 1).fill(0), sum: 0 }));
      let bucket = 0;
      while (bucket < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[bucket]!) bucket++;
      duration.buckets[bucket]!++;
      duration.sum += seconds;
    },
    upstreamError: (kind: UpstreamErrorKind) => upstreamErrors(kind),
    sessionLookup: (result: "hit" | "miss") => sessionCache(result),
    configReloaded: (result: "ok" | "error") => configReloads(result),
    async render(): Promise<Response> {
      return new Response(await registry.metrics(), { headers: { "content-type": registry.contentType } });
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** A counter with one label, counted in a Map: returns its `inc`. */
function countedByLabel(registry: Prometheus.Registry, name: string, help: string, label: string): (value: string) => void {
  const counts = new Map<string, number>();
  new Counter({
    name,
    help,
    labelNames: [label],
    registers: [registry],
    collect() {
      this.reset();
      for (const [value, count] of counts) this.inc({ [label]: value }, count);
    },
  });
  return (value) => void counts.set(value, (counts.get(value) ?? 0) + 1);
}

/**
 * The request-duration histogram as a metric prom-client's registry formats (`get()` gives
 * the series as its own Histogram does: cumulative `_bucket` lines with `le`, `+Inf`, `_sum`,
 * `_count`), from counts kept by requestAnswered.
 */
type Durations = { buckets: number[]; sum: number };

function durationHistogram(durations: Map<string, Durations>) {
  const name = "authgate_http_request_duration_seconds";
  const help = "Time to the response headers, by route.";
  return {
    name,
    help,
    type: "histogram",
    aggregator: "sum",
    get() {
      const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
      for (const [route, { buckets, sum }] of durations) {
        let cumulative = 0;
        DURATION_BUCKETS.forEach((le, index) => {
          cumulative += buckets[index]!;
          values.push({ labels: { le, route }, value: cumulative, metricName: `${name}_bucket` });
        });
        const count = cumulative + buckets[DURATION_BUCKETS.length]!;
        values.push({ labels: { le: "+Inf", route }, value: count, metricName: `${name}_bucket` });
        values.push({ labels: { route }, value: sum, metricName: `${name}_sum` });
        values.push({ labels: { route }, value: count, metricName: `${name}_count` });
      }
      return { name, help, type: "histogram", values, aggregator: "sum" };
    },
  };
}
