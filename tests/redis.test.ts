import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { isAPIError } from "better-auth/api";
import { RedisClient } from "bun";
import { startBackend, type TestBackend } from "./helpers/backend";
import { scratchPostgres } from "./helpers/fixture";
import { createRedisStorage } from "../src/db/redis";
import { freePort, memoryLogger, signUp, tempDir } from "./helpers/gateway";
import { spawnGateway, type GatewayProcess } from "./helpers/process";

/**
 * Redis as Better Auth's secondary storage. Each run starts its own redis-server on a free
 * loopback port (so it can be stopped and restarted mid-test without touching anything else)
 * and its own PostgreSQL database. Gated on the services' URLs that .ci/run sets.
 */
const POSTGRES_URL = process.env.TEST_POSTGRES_URL;
const REDIS_SERVER = process.env.TEST_REDIS_URL ? Bun.which("redis-server") : null;
if (!POSTGRES_URL || !REDIS_SERVER) {
  console.warn("TEST_POSTGRES_URL or TEST_REDIS_URL (with redis-server) is not set: skipping the Redis tests");
}

const PUBLIC_ORIGIN = "http://authgate.test";

/** Where the redis-servers of this file keep their data: only what a test SAVEs survives a restart. */
const redisDirs = [tempDir(), tempDir()];
afterAll(() => redisDirs.forEach((dir) => dir.remove()));

function startRedis(port: number, { dir = redisDirs[0]!.path, extra = [] as string[] } = {}) {
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, ...extra];
  const proc = Bun.spawn([REDIS_SERVER!, ...args], {
    stdout: "pipe",
    stderr: "inherit",
  });
  // Resolves when redis-server says it is ready (no polling).
  const ready = (async () => {
    let out = "";
    for await (const chunk of proc.stdout) {
      out += new TextDecoder().decode(chunk);
      if (out.includes("Ready to accept connections")) return;
    }
    throw new Error(`redis-server exited: ${out}`);
  })();
  return { proc, ready };
}

describe.skipIf(!POSTGRES_URL || !REDIS_SERVER)("Redis secondary storage, two instances", () => {
  let scratch: Awaited<ReturnType<typeof scratchPostgres>>;
  const redisPort = freePort();
  let redis: ReturnType<typeof startRedis>;
  let backend: TestBackend;
  let a: GatewayProcess;
  let b: GatewayProcess;
  let env: Record<string, string>;

  beforeAll(async () => {
    redis = startRedis(redisPort);
    await redis.ready;
    scratch = await scratchPostgres(POSTGRES_URL!, "authgate_redis");
    backend = startBackend();
    env = {
      DATABASE_URL: scratch.url,
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      BACKEND_API_URL: backend.url,
      BETTER_AUTH_URL: PUBLIC_ORIGIN,
      // No session cache: every request asks Better Auth, so Redis is on every request's path.
      SESSION_CACHE_SECONDS: "0",
    };
    [a, b] = await Promise.all([spawnGateway(undefined, { env }), spawnGateway(undefined, { env })]);
    backend.trustGateway(a.url, PUBLIC_ORIGIN);
  }, 30_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    redis?.proc.kill();
    await backend?.stop();
    await scratch?.drop();
  });

  test("sessions live in Redis; signed up through A, used through B, signed out through A", async () => {
    const { cookie, user } = await signUp(a.url);
    const client = new RedisClient(`redis://127.0.0.1:${redisPort}`);
    expect(await client.get(`active-sessions-${user.id}`)).not.toBeNull();
    client.close();

    const before = backend.received.length;
    expect((await fetch(b.url + "/api/via-b", { headers: { cookie } })).status).toBe(200);
    expect(backend.received[before]!.claims?.sub).toBe(user.id);
    expect(backend.received[before]!.jwtError).toBeUndefined();

    const signOut = await fetch(a.url + "/api/auth/sign-out", { method: "POST", headers: { cookie, origin: PUBLIC_ORIGIN } });
    expect(signOut.status).toBe(200);
    expect((await fetch(b.url + "/api/after", { headers: { cookie } })).status).toBe(401);
  });

  test("a Redis restart during traffic logs nobody out and fails no request", async () => {
    const { cookie } = await signUp(a.url);
    const statuses: number[] = [];
    let running = true;
    const traffic = Promise.all(
      [a, b].map(async (instance) => {
        while (running) {
          const response = await fetch(instance.url + "/api/during-outage", { headers: { cookie } });
          await response.arrayBuffer();
          statuses.push(response.status);
        }
      }),
    );
    const countAtLeast = async (n: number) => {
      while (statuses.length < n) await new Promise((resolve) => setImmediate(resolve));
    };

    await countAtLeast(50);
    redis.proc.kill("SIGKILL");
    await redis.proc.exited;
    const duringOutage = statuses.length;
    await countAtLeast(duringOutage + 100); // 100 requests while Redis is down

    // Readiness says so, and a new sign-up still works (sessions go to PostgreSQL).
    const notReady = await fetch(a.url + "/readyz");
    expect(notReady.status).toBe(503);
    expect(((await notReady.json()) as { checks: Record<string, string> }).checks.redis).toBe("unreachable");
    const newcomer = await signUp(b.url);
    expect((await fetch(a.url + "/api/newcomer", { headers: { cookie: newcomer.cookie } })).status).toBe(200);

    redis = startRedis(redisPort);
    await redis.ready;
    const afterRestart = statuses.length;
    await countAtLeast(afterRestart + 100);
    running = false;
    await traffic;

    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect(statuses.length).toBeGreaterThan(250);
    // Both sessions keep working once Redis is back.
    for (const session of [cookie, newcomer.cookie]) {
      expect((await fetch(b.url + "/api/after-restart", { headers: { cookie: session } })).status).toBe(200);
    }
  }, 30_000);
  test("a sign-out while Redis is away is refused with 503 and nothing is signed out; it is not undone when Redis comes back with its data", async () => {
    const { cookie } = await signUp(a.url);
    const client = new RedisClient(`redis://127.0.0.1:${redisPort}`);
    await client.send("SAVE", []); // Redis will come back with this session's copy
    client.close();
    redis.proc.kill("SIGKILL");
    await redis.proc.exited;

    const refused = await fetch(a.url + "/api/auth/sign-out", { method: "POST", headers: { cookie, origin: PUBLIC_ORIGIN } });
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("5");
    expect(await refused.json()).toEqual({ error: "Session store unavailable; nothing was changed, try again shortly" });
    expect(refused.headers.getSetCookie()).toEqual([]); // the browser keeps its cookie: nothing was signed out
    // Nothing was signed out: the session goes on working, from the database meanwhile.
    for (const instance of [a, b]) expect((await fetch(instance.url + "/api/during-outage", { headers: { cookie } })).status).toBe(200);

    redis = startRedis(redisPort);
    await redis.ready;
    for (const instance of [a, b]) expect((await fetch(instance.url + "/api/back", { headers: { cookie } })).status).toBe(200);
    // Once the instance has reconnected (its readiness says so), the retried sign-out works and sticks on both instances.
    while ((await fetch(a.url + "/readyz")).status !== 200) await Bun.sleep(20);
    const signedOut = await fetch(a.url + "/api/auth/sign-out", { method: "POST", headers: { cookie, origin: PUBLIC_ORIGIN } });
    expect(signedOut.status).toBe(200);
    for (const instance of [a, b]) expect((await fetch(instance.url + "/api/after-sign-out", { headers: { cookie } })).status).toBe(401);
  }, 30_000);

  test("a removal that fails mid-outage throws, and is done as soon as Redis answers, before anything is read", async () => {
    const lines: string[] = [];
    const storage = createRedisStorage(`redis://127.0.0.1:${redisPort}`, memoryLogger(lines));
    await storage.connect();
    try {
      await storage.storage.set("authgate-test-stale", "a session copy", 600);
      const client = new RedisClient(`redis://127.0.0.1:${redisPort}`);
      await client.send("SAVE", []);
      client.close();
      redis.proc.kill("SIGKILL");
      await redis.proc.exited;

      const removal = await storage.storage.delete("authgate-test-stale").then(
        () => "removed",
        (error: unknown) => error,
      );
      expect(isAPIError(removal)).toBe(true);
      expect((removal as { status: string }).status).toBe("SERVICE_UNAVAILABLE");
      expect(storage.pendingDeletes).toBe(1);
      expect(await storage.storage.get("authgate-test-stale")).toBeNull(); // Redis is away: "not found"

      redis = startRedis(redisPort);
      await redis.ready;
      const check = new RedisClient(`redis://127.0.0.1:${redisPort}`);
      expect(await check.get("authgate-test-stale")).toBe("a session copy"); // Redis came back with it
      // Until the storage's client has reconnected, reads answer "not found"; then the first
      // read removes the key before it reads anything.
      while (!(await storage.ping())) await Bun.sleep(20);
      expect(await storage.storage.get("authgate-test-stale")).toBeNull();
      expect(await check.get("authgate-test-stale")).toBeNull();
      expect(storage.pendingDeletes).toBe(0);
      check.close();
    } finally {
      storage.close();
    }
  }, 30_000);
});

/** A server of its own, with eight databases: /9 names one it does not have. */
const EIGHT_DATABASES = { dir: redisDirs[1]!.path, extra: ["--databases", "8"] };

describe.skipIf(!POSTGRES_URL || !REDIS_SERVER)("REDIS_URL's database index", () => {
  const redisPort = freePort();
  let redis: ReturnType<typeof startRedis>;
  let scratch: Awaited<ReturnType<typeof scratchPostgres>>;
  let backend: TestBackend;
  beforeAll(async () => {
    redis = startRedis(redisPort, EIGHT_DATABASES);
    await redis.ready;
    scratch = await scratchPostgres(POSTGRES_URL!, "authgate_redis_db");
    backend = startBackend();
  }, 30_000);
  afterAll(async () => {
    redis?.proc.kill();
    await backend?.stop();
    await scratch?.drop();
  });

  const keysIn = async (database: number) => {
    const client = new RedisClient(`redis://127.0.0.1:${redisPort}/${database}`);
    const keys = (await client.send("KEYS", ["*"])) as string[];
    client.close();
    return keys;
  };

  test("redis://host/5 writes to database 5 and nowhere else, also after a Redis restart", async () => {
    const env = { DATABASE_URL: scratch.url, REDIS_URL: `redis://127.0.0.1:${redisPort}/5`, BACKEND_API_URL: backend.url, BETTER_AUTH_URL: PUBLIC_ORIGIN };
    const gateway = await spawnGateway(undefined, { env });
    try {
      const first = await signUp(gateway.url);
      expect(await keysIn(5)).toContain(`active-sessions-${first.user.id}`);
      expect(await keysIn(0)).toEqual([]);

      redis.proc.kill("SIGKILL");
      await redis.proc.exited;
      redis = startRedis(redisPort, EIGHT_DATABASES);
      await redis.ready;
      // The client reconnects by itself; a sign-up once it has (the readiness check says so) lands in 5 again.
      while ((await fetch(gateway.url + "/readyz")).status !== 200) await Bun.sleep(20);
      const second = await signUp(gateway.url);
      expect(await keysIn(5)).toContain(`active-sessions-${second.user.id}`);
      expect(await keysIn(0)).toEqual([]);
    } finally {
      await gateway.stop();
    }
  }, 30_000);

  test("a database the server does not have stops start-up with a message naming REDIS_URL", async () => {
    const env = { DATABASE_URL: scratch.url, REDIS_URL: `redis://127.0.0.1:${redisPort}/9`, BACKEND_API_URL: backend.url, BETTER_AUTH_URL: PUBLIC_ORIGIN };
    const failed = await spawnGateway(undefined, { env }).then(
      () => "started",
      (error: Error) => error.message,
    );
    expect(failed).toContain("REDIS_URL names database 9");
    expect(await keysIn(0)).toEqual([]);
  }, 30_000);
});
