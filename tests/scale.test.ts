import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startNginx } from "../bench/nginx";
import type { Service } from "../bench/lib";
import { startBackend, type TestBackend } from "./helpers/backend";
import { scratchPostgres } from "./helpers/fixture";
import { signUp } from "./helpers/gateway";
import { spawnGateway, type GatewayProcess } from "./helpers/process";

const POSTGRES_URL = process.env.TEST_POSTGRES_URL;
const NGINX = Bun.which("nginx", { PATH: `${process.env.PATH}:/usr/sbin` });
if (!POSTGRES_URL || !NGINX) console.warn("TEST_POSTGRES_URL or nginx is missing: skipping the load-balancer test");

const PUBLIC_ORIGIN = "http://authgate.test";

describe.skipIf(!POSTGRES_URL || !NGINX)("nginx round-robin over two instances", () => {
  let scratch: Awaited<ReturnType<typeof scratchPostgres>>;
  let backend: TestBackend;
  let env: Record<string, string>;
  let a: GatewayProcess;
  let b: GatewayProcess;
  let nginx: Service;

  beforeAll(async () => {
    scratch = await scratchPostgres(POSTGRES_URL!, "authgate_scale");
    backend = startBackend();
    env = { DATABASE_URL: scratch.url, BACKEND_API_URL: backend.url, BETTER_AUTH_URL: PUBLIC_ORIGIN };
    [a, b] = await Promise.all([spawnGateway(undefined, { env }), spawnGateway(undefined, { env })]);
    nginx = (await startNginx([a.url, b.url]))!;
  }, 30_000);

  afterAll(async () => {
    await nginx?.stop();
    await Promise.all([a?.stop(), b?.stop()]);
    await backend?.stop();
    await scratch?.drop();
  });

  test("10 000+ authenticated requests from 50 connections, no error, while one instance restarts gracefully", async () => {
    const { cookie } = await signUp(nginx.url);
    // At least 10 000 requests, and the load goes on for 3 000 more once the restarted instance
    // answers: on a loaded machine its start-up can take longer than the rest of a fixed count.
    let total = 10_000;
    let restarted = false;
    let issued = 0;
    const failures: string[] = [];
    let done = 0;
    const load = Promise.all(
      Array.from({ length: 50 }, async () => {
        while (issued < total || !restarted) {
          issued++;
          try {
            const response = await fetch(nginx.url + "/api/balanced", { headers: { cookie } });
            await response.arrayBuffer();
            if (response.status !== 200) failures.push(`status ${response.status}`);
          } catch (error) {
            failures.push((error as Error).message);
          }
          done++;
        }
      }),
    );

    // A third of the way in, restart B the way an operator would: SIGTERM, then start it again.
    while (done < total / 3) await new Promise((resolve) => setImmediate(resolve));
    const port = Number(new URL(b.url).port);
    const oldB = b;
    try {
      expect(await b.stop()).toBe(0);
      b = await spawnGateway(undefined, { env, port });
      total = Math.max(total, issued + 3_000);
    } finally {
      restarted = true; // also when the restart failed: the load must end
    }
    await load;

    expect(failures).toEqual([]);
    expect(done).toBe(total);
    // Round-robin really spread the load: every instance, old B and new B included, served some.
    // (Stopped first, so their buffered log lines are all written.)
    expect(await a.stop()).toBe(0);
    expect(await b.stop()).toBe(0);
    const served = (instance: GatewayProcess) => instance.log().split('"path":"/api/balanced"').length - 1;
    for (const instance of [a, oldB, b]) expect(served(instance)).toBeGreaterThan(100);
    expect(served(a) + served(oldB) + served(b)).toBe(total);
  }, 120_000);
});
