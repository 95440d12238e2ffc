import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { RedisClient } from "bun";
import { startBackend, type TestBackend } from "./helpers/backend";
import { scratchPostgres } from "./helpers/fixture";
import { freePort, signUp } from "./helpers/gateway";
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

function startRedis(port: number) {
  const proc = Bun.spawn([REDIS_SERVER!, "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
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
});
