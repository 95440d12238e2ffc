import { afterAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { spawnEarly, startAuthWorker } from "../src/auth/remote";
import { loadConfig } from "../src/config";
import { useGateways } from "./helpers/fixture";
import { until } from "./helpers/feed";
import { signUp, tempDir } from "./helpers/gateway";
import { metricsOf, sample } from "./helpers/metrics";

/**
 * The auth worker (Better Auth and the database, on their own thread) is supervised: when it
 * dies, requests that need it fail fast with 503 instead of hanging, cached sessions keep
 * being served, and it is replaced without restarting the process.
 */
const fixture = useGateways();


describe("a worker that dies", () => {
  test("fails what needs it with 503, keeps serving cached sessions, says so in /readyz, and is replaced", async () => {
    const gw = await fixture.gatewayWith(
      { SESSION_CACHE_SECONDS: "60", METRICS_TOKEN: "metrics-secret-token" },
      // Long enough to look at the gateway while the worker is down; the restart is awaited, not slept.
      { authSupervision: { restartDelayMs: 1500 } },
    );
    const cached = await signUp(gw.url);
    expect((await fetch(gw.url + "/api/warm", { headers: { cookie: cached.cookie } })).status).toBe(200);
    const uncached = await signUp(gw.url);

    gw.gateway.auth.exitForTest();
    await until(() => gw.gateway.auth.state === "restarting");

    // A session the proxy thread has not seen needs the worker: 503, at once.
    const missed = await fetch(gw.url + "/api/needs-worker", { headers: { cookie: uncached.cookie } });
    expect(missed.status).toBe(503);
    expect(await missed.json()).toEqual({ error: "Authentication service unavailable" });
    // So do Better Auth's routes, and a WebSocket handshake.
    const signIn = await fetch(gw.url + "/api/auth/sign-in/email", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: uncached.user.email, password: "correct horse battery" }),
    });
    expect(signIn.status).toBe(503);
    expect(await signIn.json()).toEqual({ error: "Authentication service unavailable" });
    const handshake = await fetch(gw.url + "/api/ws", {
      headers: {
        cookie: uncached.cookie,
        upgrade: "websocket",
        connection: "upgrade",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version": "13",
      },
    });
    expect(handshake.status).toBe(503);
    // A cached session is still served, with a JWT the backend verifies.
    const before = fixture.backend.received.length;
    expect((await fetch(gw.url + "/api/still-cached", { headers: { cookie: cached.cookie } })).status).toBe(200);
    expect(fixture.backend.received[before]!.claims?.sub).toBe(cached.user.id);
    // Readiness tells a load balancer; liveness stays up.
    const notReady = await fetch(gw.url + "/readyz");
    expect(notReady.status).toBe(503);
    expect(((await notReady.json()) as { checks: Record<string, string> }).checks.auth).toBe("restarting");
    expect((await fetch(gw.url + "/healthz")).status).toBe(200);
    expect(gw.logLines.some((line) => line.includes("auth worker died: restarting it"))).toBe(true);

    await until(() => gw.gateway.auth.state === "ok");
    expect((await fetch(gw.url + "/api/after-restart", { headers: { cookie: uncached.cookie } })).status).toBe(200);
    expect((await fetch(gw.url + "/readyz")).status).toBe(200);
    expect(sample(await metricsOf(gw.url), "authgate_auth_worker_restarts_total")).toBe(1);
    // New sign-ups work on the replacement.
    const after = await signUp(gw.url);
    expect((await fetch(gw.url + "/api/new-user", { headers: { cookie: after.cookie } })).status).toBe(200);
  }, 20_000);

  test("dying again and again is retried with a growing delay, and counted each time", async () => {
    const gw = await fixture.gatewayWith({ METRICS_TOKEN: "metrics-secret-token" }, { authSupervision: { restartDelayMs: 20 } });
    for (let i = 1; i <= 3; i++) {
      gw.gateway.auth.exitForTest();
      await until(() => gw.gateway.auth.state === "restarting");
      await until(() => gw.gateway.auth.state === "ok");
      expect(gw.gateway.auth.restarts).toBe(i);
    }
    const delays = gw.logLines
      .map((line) => JSON.parse(line) as { msg: string; restartInMs?: number })
      .filter((line) => line.msg === "auth worker died: restarting it")
      .map((line) => line.restartInMs);
    // Each death came right after a start: the backoff doubled each time.
    expect(delays).toEqual([40, 80, 160]);
    expect(sample(await metricsOf(gw.url), "authgate_auth_worker_restarts_total")).toBe(3);
    const { cookie } = await signUp(gw.url);
    expect((await fetch(gw.url + "/api/after-three", { headers: { cookie } })).status).toBe(200);
  }, 20_000);
});

describe("the first worker, spawned before the gateway (src/index.ts)", () => {
  const config = () => loadConfig({ BACKEND_API_URL: "http://127.0.0.1:9", DATABASE_URL: join(dir.path, `early-${crypto.randomUUID()}.db`), BETTER_AUTH_SECRET: "early-worker-secret-early-worker-secret-0" });
  const dir = tempDir();
  afterAll(() => dir.remove());
  const quiet = { info() {}, warn() {}, error() {} };

  test("one that exited before it was taken over: start-up fails with WorkerExited at once, it does not wait for a ready that never comes", async () => {
    const script = join(dir.path, "exits.ts");
    writeFileSync(script, "process.exit(3);\n");
    const early = spawnEarly(pathToFileURL(script).href);
    await until(() => early.exitCode !== undefined);
    await expect(startAuthWorker(config(), quiet, pathToFileURL(script).href, { early })).rejects.toMatchObject({ remoteName: "WorkerExited" });
  }, 5_000);

  test("one still loading is the worker the gateway uses: it answers, and no second one is spawned", async () => {
    const url = new URL("../src/auth/worker.ts", import.meta.url).href;
    const early = spawnEarly(url);
    const auth = await startAuthWorker(config(), quiet, url, { early });
    try {
      expect(await auth.ping()).toBe(true);
      expect(auth.restarts).toBe(0);
      // The early worker is the one answering: ending it ends the answers until a restart.
      early.worker.terminate();
      await until(() => auth.state === "restarting");
    } finally {
      await auth.close();
    }
  });
});
