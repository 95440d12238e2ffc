/**
 * The auth step alone (session → identity + JWT), measured with mitata in-process:
 * a cache hit (the hot path: no SQL, no signing) and a cache miss (the worker validates the
 * session with two SQL queries; the JWT is reused from its own cache, or minted).
 * Usage: bun bench/auth-step.ts
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bench, run, summary } from "mitata";
import { createGateway } from "../src/app";
import { loadConfig } from "../src/config";
import { freePort, signUpCookie } from "./lib";

const dir = mkdtempSync(join(tmpdir(), "authgate-authstep-"));
const quiet = { info() {}, warn() {}, error() {} };
const env = (port: number, extra: Record<string, string> = {}) => ({
  PORT: String(port),
  HOST: "127.0.0.1",
  DATABASE_URL: join(dir, "authgate.db"),
  BETTER_AUTH_SECRET: "bench-secret-bench-secret-bench-secret-0",
  BETTER_AUTH_URL: `http://127.0.0.1:${port}`,
  ...extra,
});

const cachedPort = freePort();
const cached = await createGateway(loadConfig(env(cachedPort)), { logger: quiet });
cached.listen();
const cookie = await signUpCookie(`http://127.0.0.1:${cachedPort}`);
// The same database, with the session cache off: every call is a miss.
const uncached = await createGateway(loadConfig(env(freePort(), { SESSION_CACHE_SECONDS: "0" })), { logger: quiet });
const headers = new Headers({ cookie });

const queriesBefore = cached.auth.queryCount;
for (let i = 0; i < 1000; i++) await cached.identities.identify(headers);
const queriesPerHit = (cached.auth.queryCount - queriesBefore - 2) / 999; // the first call is a miss (2 queries)

summary(() => {
  bench("auth step, cache hit", async () => {
    if (!(await cached.identities.identify(headers))) throw new Error("no identity");
  });
  bench("auth step, cache miss (worker: session lookup)", async () => {
    if (!(await uncached.identities.identify(headers))) throw new Error("no identity");
  });
});
await run({ colors: false });
console.log(`\nSQL queries per cache hit (over 999 hits): ${queriesPerHit}`);

await cached.close();
await uncached.close();
rmSync(dir, { recursive: true, force: true });
