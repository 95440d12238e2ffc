import { describe, expect, test } from "bun:test";
import { useGateways } from "./helpers/fixture";
import { freePort, signUp } from "./helpers/gateway";
import { sample } from "./helpers/metrics";
import { rawHttp } from "./helpers/raw-http";

const fixture = useGateways();
const { gatewayWith } = fixture;


describe("readiness", () => {
  test("/readyz is 200 with every check ok, and 503 naming the check once the database is gone", async () => {
    const gw = await gatewayWith({});
    const ready = await fetch(gw.url + "/readyz");
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: "ready", checks: { auth: "ok", database: "ok", signingKey: "ok" } });

    await gw.gateway.auth.close(); // the auth worker, and with it the database, is gone
    const notReady = await fetch(gw.url + "/readyz");
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toEqual({ status: "not ready", checks: { auth: "stopped", database: "unreachable", signingKey: "ok" } });
    // /healthz only says the process serves.
    expect((await fetch(gw.url + "/healthz")).status).toBe(200);
  });
});

describe("metrics", () => {
  test("without METRICS_TOKEN or METRICS_PORT, /metrics does not exist (and is not proxied)", async () => {
    const gw = await gatewayWith({});
    const before = fixture.backend.received.length;
    const response = await fetch(gw.url + "/metrics", { headers: { authorization: "Bearer anything" } });
    expect(response.status).toBe(404);
    expect(fixture.backend.received.length).toBe(before);
  });

  test("METRICS_TOKEN bearers get Prometheus text with requests, cache, upstream errors and sockets", async () => {
    const gw = await gatewayWith({ METRICS_TOKEN: "metrics-secret-token", PROXY_TIMEOUT_MS: "200" });
    const { cookie } = await signUp(gw.url);
    for (let i = 0; i < 3; i++) await (await fetch(gw.url + "/api/counted", { headers: { cookie } })).arrayBuffer();
    await (await fetch(gw.url + "/api/counted")).arrayBuffer(); // 401
    await (await fetch(gw.url + "/api/hang", { headers: { cookie } })).arrayBuffer(); // 504

    expect((await fetch(gw.url + "/metrics")).status).toBe(404);
    expect((await fetch(gw.url + "/metrics", { headers: { authorization: "Bearer wrong-token-wrong-tok" } })).status).toBe(404);
    const response = await fetch(gw.url + "/metrics", { headers: { authorization: "Bearer metrics-secret-token" } });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toStartWith("text/plain");
    const text = await response.text();
    expect(sample(text, 'authgate_http_requests_total{route="api",method="GET",status="2xx"}')).toBe(3);
    expect(sample(text, 'authgate_http_requests_total{route="api",method="GET",status="4xx"}')).toBe(1);
    expect(sample(text, 'authgate_http_requests_total{route="api",method="GET",status="5xx"}')).toBe(1);
    expect(sample(text, 'authgate_http_requests_total{route="auth",method="POST",status="2xx"}')).toBe(1);
    expect(sample(text, 'authgate_upstream_errors_total{kind="timeout"}')).toBe(1);
    // The first proxied request missed the cache, the next three hit it.
    expect(sample(text, 'authgate_session_cache_total{result="miss"}')).toBe(1);
    expect(sample(text, 'authgate_session_cache_total{result="hit"}')).toBe(3);
    expect(sample(text, 'authgate_http_request_duration_seconds_count{route="api"}')).toBe(5);
    // The metrics request itself is in flight while it is answered.
    expect(sample(text, "authgate_http_requests_in_flight")).toBe(1);
    expect(sample(text, "authgate_websockets_open")).toBe(0);
  });

  test("a refused backend is counted as refused", async () => {
    const gw = await gatewayWith({ METRICS_TOKEN: "metrics-secret-token", BACKEND_API_URL: `http://127.0.0.1:${freePort()}` });
    const { cookie } = await signUp(gw.url);
    expect((await fetch(gw.url + "/api/x", { headers: { cookie } })).status).toBe(502);
    const text = await (await fetch(gw.url + "/metrics", { headers: { authorization: "Bearer metrics-secret-token" } })).text();
    expect(sample(text, 'authgate_upstream_errors_total{kind="refused"}')).toBe(1);
  });

  test("METRICS_PORT serves /metrics on its own port and nowhere else", async () => {
    const metricsPort = freePort();
    const gw = await gatewayWith({ METRICS_PORT: String(metricsPort) });
    expect((await fetch(gw.url + "/metrics")).status).toBe(404);
    const response = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(response.status).toBe(200);
    expect(await response.text()).toContain("# TYPE authgate_http_requests_total counter");
    expect((await fetch(`http://127.0.0.1:${metricsPort}/api/x`)).status).toBe(404);
    // An unusable Host (Bun leaves request.url relative) is still answered, never with Bun's error page.
    const raw = await rawHttp(metricsPort, "GET /metrics HTTP/1.1\r\nHost: \r\n\r\n");
    expect(raw.status).toBe(200);
    expect(raw.text).toContain("authgate_http_requests_total");
  });
});

describe("the request log line", () => {
  test("has the request's facts and none of its secrets", async () => {
    const gw = await gatewayWith({});
    const { cookie, user } = await signUp(gw.url);
    const body = new Uint8Array(1234);
    const response = await fetch(gw.url + "/api/logged?token=secret-query-value", {
      method: "POST",
      body,
      headers: { cookie, "x-request-id": "log-line-1", authorization: "Bearer client-token-value" },
    });
    await response.arrayBuffer();
    const lines = gw.logLines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const line = lines.find((l) => l.requestId === "log-line-1")!;
    expect(line).toMatchObject({ msg: "request", method: "POST", path: "/api/logged", status: 200, userId: user.id, bytesIn: 1234 });
    expect(line.durationMs).toBeNumber();
    expect(line.upstreamMs).toBeNumber();
    expect(line.bytesOut).toBeNumber();
    const everything = gw.logLines.join("\n");
    expect(everything).not.toContain("secret-query-value");
    expect(everything).not.toContain("client-token-value");
    expect(everything).not.toContain(cookie.split("=")[1]!.split(".")[0]!);
    expect(everything).not.toContain("Bearer ey");
  });
});
