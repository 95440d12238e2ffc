import { Counter, Gauge, Histogram, Registry } from "prom-client";

export type UpstreamErrorKind = "refused" | "timeout" | "reset";

/**
 * The gateway's Prometheus metrics, in a registry of its own (no process-wide default
 * registry: two gateways in one process, as in tests, count separately).
 */
export function createMetrics(openWebSockets: () => number) {
  const registry = new Registry();
  const requests = new Counter({
    name: "authgate_http_requests_total",
    help: "Requests answered, by route (its name in the route table; auth for Better Auth, other for the rest), method and status class.",
    labelNames: ["route", "method", "status"] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: "authgate_http_request_duration_seconds",
    help: "Time to the response headers, by route.",
    labelNames: ["route"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  // Counted in a plain number and read at scrape time: a labelled gauge's inc and dec cost
  // more than the rest of the request's metrics together.
  let inFlight = 0;
  new Gauge({
    name: "authgate_http_requests_in_flight",
    help: "Requests being handled (until their response headers).",
    registers: [registry],
    collect() {
      this.set(inFlight);
    },
  });
  const upstreamErrors = new Counter({
    name: "authgate_upstream_errors_total",
    help: "Backend failures before a response: connection refused, header timeout, connection reset.",
    labelNames: ["kind"] as const,
    registers: [registry],
  });
  const sessionCache = new Counter({
    name: "authgate_session_cache_total",
    help: "Session lookups by outcome: hit (answered from memory) or miss (asked the auth worker).",
    labelNames: ["result"] as const,
    registers: [registry],
  });
  const configReloads = new Counter({
    name: "authgate_config_reloads_total",
    help: "Re-reads of CONFIG_FILE (SIGHUP), by result: ok (the new table serves) or error (the old one stays).",
    labelNames: ["result"] as const,
    registers: [registry],
  });
  const authWorkerRestarts = new Counter({
    name: "authgate_auth_worker_restarts_total",
    help: "Times the auth worker (Better Auth and the database) died and was replaced.",
    registers: [registry],
  });
  new Gauge({
    name: "authgate_websockets_open",
    help: "WebSockets relayed right now.",
    registers: [registry],
    collect() {
      this.set(openWebSockets());
    },
  });

  return {
    registry,
    requestStarted: () => void inFlight++,
    /** `route`: a route's name, "auth" (Better Auth) or "other" (the gateway's own paths, and requests refused before matching). */
    requestAnswered(route: string, method: string, status: number, seconds: number) {
      inFlight--;
      requests.inc({ route, method, status: `${Math.floor(status / 100)}xx` });
      duration.observe({ route }, seconds);
    },
    upstreamError: (kind: UpstreamErrorKind) => upstreamErrors.inc({ kind }),
    sessionLookup: (result: "hit" | "miss") => sessionCache.inc({ result }),
    authWorkerRestarted: () => authWorkerRestarts.inc(),
    configReloaded: (result: "ok" | "error") => configReloads.inc({ result }),
    async render(): Promise<Response> {
      return new Response(await registry.metrics(), { headers: { "content-type": registry.contentType } });
    },
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
