import { describe, expect, test } from "bun:test";
import { Counter, Histogram, Registry } from "prom-client";
import { createMetrics } from "../src/ops/metrics";

/**
 * The gateway counts per-request metrics in plain numbers and hands them to prom-client at
 * scrape time. prom-client's own Counter and Histogram, fed the same requests, are the
 * oracle: every series and value must be what they would have written.
 */
type Answer = [route: string, method: string, status: number, seconds: number];

const CASES: [string, Answer[]][] = [
  ["nothing yet", []],
  ["one request", [["api", "GET", 200, 0.0004]]],
  [
    "every bucket's bound exactly, and between bounds",
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 0.0011, 0.7, 29.9].map((s): Answer => ["api", "GET", 200, s]),
  ],
  ["above the last bound (only +Inf)", [["api", "GET", 200, 31], ["api", "GET", 200, 3600]]],
  ["zero seconds", [["auth", "POST", 200, 0]]],
  [
    "routes, methods and status classes mixed",
    [
      ["api", "GET", 200, 0.002],
      ["api", "GET", 204, 0.003],
      ["api", "GET", 404, 0.02],
      ["api", "POST", 502, 0.2],
      ["api", "GET", 101, 0.001],
      ["auth", "POST", 302, 0.04],
      ["other", "TRACE", 405, 0],
      ["app", "PROPFIND", 207, 0.004],
      ["other", "GET", 500, 0.01],
    ],
  ],
];

async function oracle(answers: Answer[]): Promise<string> {
  const registry = new Registry();
  const requests = new Counter({ name: "authgate_http_requests_total", help: "h", labelNames: ["route", "method", "status"], registers: [registry] });
  const duration = new Histogram({
    name: "authgate_http_request_duration_seconds",
    help: "h",
    labelNames: ["route"],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  for (const [route, method, status, seconds] of answers) {
    requests.inc({ route, method, status: `${Math.floor(status / 100)}xx` });
    duration.observe({ route }, seconds);
  }
  return registry.metrics();
}

/** The sample lines of the named metrics (HELP texts aside), sorted: the oracle orders series differently. */
function samples(text: string, prefixes: string[]): string[] {
  return text
    .split("\n")
    .filter((line) => prefixes.some((prefix) => line.startsWith(prefix)) || prefixes.some((prefix) => line.startsWith(`# TYPE ${prefix}`)))
    .sort();
}

describe("per-request metrics, as prom-client would write them", () => {
  test.each(CASES)("%s", async (_name, answers) => {
    const metrics = createMetrics({ openWebSockets: () => 0, authWorkerRestarts: () => 0 });
    for (const [route, method, status, seconds] of answers) {
      metrics.requestStarted();
      metrics.requestAnswered(route, method, status, seconds);
    }
    const ours = await (await metrics.render()).text();
    const names = ["authgate_http_requests_total", "authgate_http_request_duration_seconds"];
    expect(samples(ours, names)).toEqual(samples(await oracle(answers), names));
    expect(ours).toContain("authgate_http_requests_in_flight 0\n");
  });

  test("made-up methods are one series, method=\"other\": a client cannot add series at will", async () => {
    const metrics = createMetrics({ openWebSockets: () => 0, authWorkerRestarts: () => 0 });
    for (let i = 0; i < 1000; i++) {
      metrics.requestStarted();
      metrics.requestAnswered("api", `FROB${i}`, 200, 0.001);
    }
    metrics.requestStarted();
    metrics.requestAnswered("api", "PROPFIND", 207, 0.001);
    const series = (await (await metrics.render()).text()).split("\n").filter((line) => line.startsWith("authgate_http_requests_total{"));
    expect(series.sort()).toEqual(['authgate_http_requests_total{route="api",method="PROPFIND",status="2xx"} 1', 'authgate_http_requests_total{route="api",method="other",status="2xx"} 1000']);
  });

  test("a scrape changes nothing: two in a row give the same text", async () => {
    const metrics = createMetrics({ openWebSockets: () => 2, authWorkerRestarts: () => 3 });
    metrics.requestStarted();
    metrics.requestStarted();
    metrics.requestAnswered("api", "GET", 200, 0.003);
    metrics.sessionLookup("hit");
    metrics.sessionLookup("hit");
    metrics.sessionLookup("miss");
    metrics.upstreamError("reset");
    metrics.configReloaded("error");
    const first = await (await metrics.render()).text();
    expect(await (await metrics.render()).text()).toBe(first);
    for (const line of [
      "authgate_http_requests_in_flight 1",
      'authgate_session_cache_total{result="hit"} 2',
      'authgate_session_cache_total{result="miss"} 1',
      'authgate_upstream_errors_total{kind="reset"} 1',
      'authgate_config_reloads_total{result="error"} 1',
      "authgate_auth_worker_restarts_total 3",
      "authgate_websockets_open 2",
      'authgate_http_request_duration_seconds_count{route="api"} 1',
    ]) {
      expect(first).toContain(`\n${line}\n`);
    }
  });

  test("a counter nothing has counted yet is declared, with no series (as prom-client does)", async () => {
    const text = await (await createMetrics({ openWebSockets: () => 0, authWorkerRestarts: () => 0 }).render()).text();
    expect(text).toContain("# TYPE authgate_upstream_errors_total counter\n");
    expect(text).not.toContain("authgate_upstream_errors_total{");
    expect(text).toContain("# TYPE authgate_auth_worker_restarts_total counter\n");
  });
});
