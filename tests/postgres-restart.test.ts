import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import pg from "pg";
import { startBackend, type TestBackend } from "./helpers/backend";
import { until } from "./helpers/feed";
import { signUp, startGateway, tempDir, type RunningGateway } from "./helpers/gateway";
import { operatorOn } from "./helpers/operator";
import { postgresBinDir, startPrivatePostgres, type PrivatePostgres } from "./helpers/private-postgres";

/**
 * PostgreSQL stopped (`pg_ctl stop -m fast`, which terminates every connection with FATAL
 * 57P01) and started again under traffic. Before the fix, a connection's error that arrived
 * while kysely still held the client (pg-pool listens only to idle clients) was thrown with
 * nobody listening and ended the auth worker: one busy cycle in two, after which every request
 * needing it hung. The server here is the test's own (tests/helpers/private-postgres.ts).
 */
const ENABLED = Boolean(process.env.TEST_POSTGRES_URL) && postgresBinDir() !== undefined;
if (!ENABLED) console.warn("TEST_POSTGRES_URL or PostgreSQL's server binaries are missing: skipping the PostgreSQL restart tests");

const CYCLES = 10;


type Outcome = number | "hung" | "network error";

/** Authenticated GETs from `concurrency` loops (paced by `gapMs`) until stopped; every outcome recorded in order. */
function traffic(gw: RunningGateway, cookie: string, concurrency: number, gapMs: number) {
  const outcomes: Outcome[] = [];
  let running = true;
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) {
      let outcome: Outcome;
      try {
        // A client's patience, as in the report (8 s): an answer must come long before.
        const response = await fetch(gw.url + "/api/during-restarts", { headers: { cookie }, signal: AbortSignal.timeout(8000) });
        await response.arrayBuffer();
        outcome = response.status;
      } catch (error) {
        outcome = (error as Error).name === "TimeoutError" ? "hung" : "network error";
      }
      outcomes.push(outcome);
      if (gapMs > 0) await Bun.sleep(gapMs); // the load's pace, not a wait for anything
    }
  });
  return {
    outcomes,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

describe.skipIf(!ENABLED)("PostgreSQL restarts under traffic", () => {
  let server: PrivatePostgres;
  let backend: TestBackend;
  const gateways: { gw: RunningGateway; dir: ReturnType<typeof tempDir> }[] = [];

  beforeAll(async () => {
    server = await startPrivatePostgres();
    backend = startBackend();
  }, 60_000);
  afterAll(async () => {
    for (const { gw, dir } of gateways) {
      await gw.stop();
      dir.remove();
    }
    await backend?.stop();
    await server?.remove();
  });

  async function gatewayOnServer(poolSize: number) {
    const dir = tempDir();
    // No session cache: every request asks the auth worker, and so the database.
    const gw = await startGateway({ BACKEND_API_URL: backend.url, DATABASE_URL: server.url, DATABASE_POOL_SIZE: String(poolSize), SESSION_CACHE_SECONDS: "0" }, dir.path);
    gateways.push({ gw, dir });
    backend.trustGateway(gw.url, gw.url);
    return gw;
  }

  test.each([
    ["an idle pool (one request every 100 ms, ten connections)", 1, 100, 10],
    ["a busy pool (30 requests at a time on four connections)", 30, 0, 4],
  ])(`${CYCLES} stops and starts with %s: answers are 200 or 503, never a hang, the worker never dies, then every request is 200 again`, async (_name, concurrency, gapMs, poolSize) => {
    const gw = await gatewayOnServer(poolSize);
    const { cookie } = await signUp(gw.url);
    const load = traffic(gw, cookie, concurrency, gapMs);
    try {
      await until(() => load.outcomes.length >= 20);
      for (let cycle = 0; cycle < CYCLES; cycle++) {
        await server.stop();
        const stoppedAt = load.outcomes.length;
        await until(() => load.outcomes.length >= stoppedAt + 3); // answers while it is down
        await server.start();
        const startedAt = load.outcomes.length;
        await until(() => load.outcomes.slice(startedAt).includes(200));
      }
      // Recovered: the next 50 answers in a row are all 200.
      const recoveredAt = load.outcomes.lastIndexOf(200);
      await until(() => load.outcomes.length >= recoveredAt + 50);
      expect(load.outcomes.slice(recoveredAt, recoveredAt + 50).filter((o) => o !== 200)).toEqual([]);
    } finally {
      await load.stop();
    }
    const unexpected = load.outcomes.filter((o) => o !== 200 && o !== 503);
    expect(unexpected).toEqual([]);
    expect(load.outcomes.filter((o) => o === 503).length).toBeGreaterThan(0); // the outages were seen
    expect(gw.gateway.auth.restarts).toBe(0);
    expect(gw.logLines.filter((line) => line.includes("auth worker died"))).toEqual([]);
  }, 180_000);

  test("an API key while PostgreSQL is down gets 503 (an outage), not 401 (a bad key); after, 200 again", async () => {
    const gw = await gatewayOnServer(4);
    const { user } = await signUp(gw.url);
    const operator = await operatorOn(gw, server.url);
    let key: { id: string; key: string };
    try {
      key = await operator.createKey(user.id);
    } finally {
      await operator.close();
    }
    const call = async () => {
      const response = await fetch(gw.url + "/api/keyed", { headers: { "x-api-key": key.key } });
      return { status: response.status, body: await response.text() };
    };
    expect((await call()).status).toBe(200);
    await server.stop();
    try {
      const during = await call(); // SESSION_CACHE_SECONDS=0: the key is checked again
      expect(during.status).toBe(503);
      expect(JSON.parse(during.body)).toEqual({ error: "Authentication service unavailable" });
    } finally {
      await server.start();
    }
    // Back once the pool reconnects: each attempt is a real request, the first 200 ends it.
    let after = await call();
    for (let attempt = 0; attempt < 200 && after.status !== 200; attempt++) after = await call();
    expect(after.status).toBe(200);
  }, 60_000);

  test("a session lookup in flight when the worker dies fails at once with 503; the replacement answers", async () => {
    const gw = await gatewayOnServer(4);
    const { cookie } = await signUp(gw.url);
    // Hold the session table, so that the worker's lookup waits on PostgreSQL.
    const locker = new pg.Client({ connectionString: server.url });
    await locker.connect();
    try {
      await locker.query('begin; lock table "session" in access exclusive mode');
      const blocked = fetch(gw.url + "/api/blocked", { headers: { cookie }, signal: AbortSignal.timeout(8000) });
      // The lookup is waiting for the lock (PostgreSQL says so), not done and not yet sent.
      for (;;) {
        const { rows } = await locker.query("select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock'");
        if (rows[0].n > 0) break;
      }
      gw.gateway.auth.exitForTest();
      const response = await blocked;
      expect(response.status).toBe(503);
      expect(await response.json()).toEqual({ error: "Authentication service unavailable" });
    } finally {
      await locker.query("rollback").catch(() => {});
      await locker.end();
    }
    await until(() => gw.gateway.auth.state === "ok");
    expect((await fetch(gw.url + "/api/after-replacement", { headers: { cookie } })).status).toBe(200);
  }, 60_000);
});
