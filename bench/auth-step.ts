/**
 * The auth step alone (session → identity + JWT), measured with mitata in-process:
 * a cache hit (the hot path: no SQL, no signing) and a cache miss (the worker validates the
 * session with two SQL queries; the JWT is reused from its own cache, or minted). Then route
 * matching alone, on tables of 1, 100 and 10 000 routes: its cost follows the path's depth,
 * not the table's size. Then Elysia's own share of a request: an app shaped like the gateway's
 * (strictPath, onError, a `resolve` and a wildcard route returning a Response) against a plain
 * function doing the same work.
 * Usage: bun bench/auth-step.ts
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Elysia } from "elysia";
import { bench, run, summary } from "mitata";
import { createGateway } from "../src/app";
import { loadConfig } from "../src/config";
import { compileTable } from "../src/routes/match";
import type { Route } from "../src/routes/table";
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
const audience = `http://127.0.0.1:${cachedPort}`;

const queriesBefore = cached.auth.queryCount;
for (let i = 0; i < 1000; i++) await cached.identities.identify(headers);
const queriesPerHit = (cached.auth.queryCount - queriesBefore - 2) / 999; // the first call is a miss (2 queries)

summary(() => {
  bench("auth step, cache hit", async () => {
    const identity = await cached.identities.identify(headers);
    if (!identity) throw new Error("no identity");
    const token = cached.identities.tokenFor(identity, audience);
    if (typeof token !== "string") await token;
  });
  bench("auth step, cache miss (worker: session lookup)", async () => {
    const identity = await uncached.identities.identify(headers);
    if (!identity) throw new Error("no identity");
    await uncached.identities.tokenFor(identity, audience);
  });
});
await run({ colors: false });

// Route matching: the default table's one route, then 100 and 10 000 routes (services under
// /api, /api itself and /), each asked for a path four segments deep.
const route = (name: string, path: string): Route => ({ ...cached.routes[0]!, name, path }) as Route;
const tableOf = (size: number) =>
  compileTable([...Array.from({ length: size - 1 }, (_, i) => route(`svc${i}`, `/api/svc${i}/v1`)), route("api", "/api")], (r) => r);
const tables = { 1: tableOf(1), 100: tableOf(100), 10_000: tableOf(10_000) };
summary(() => {
  for (const [size, table] of Object.entries(tables)) {
    const path = size === "1" ? "/api/orders/42/items" : "/api/svc97/v1/items";
    bench(`route match, ${size} route(s): ${path}`, () => {
      if (table.match(path).kind !== "route") throw new Error("no route");
    });
  }
  bench("route match, 100 routes, an encoded path: /api/svc97/v1/it%65ms", () => {
    if (tables[100].match("/api/svc97/v1/it%65ms").kind !== "route") throw new Error("no route");
  });
});
await run({ colors: false });

// Elysia's step: the same work (a header read in resolve, a Response from the handler) with
// and without Elysia around it; the difference is what Elysia itself costs per request.
const shaped = new Elysia({ strictPath: true, handler: { standardHostname: false } })
  .onError(() => new Response("error", { status: 500 }))
  .get("/healthz", () => ({ status: "ok" }))
  .use(
    new Elysia()
      .resolve(async ({ request }) => ({ sessionCookie: request.headers.get("cookie") }))
      .all("/*", async ({ sessionCookie }) => new Response(sessionCookie), { parse: "none", detail: { hide: true } }),
  );
const plain = async (request: Request) => new Response(request.headers.get("cookie"));
const request = () => new Request("http://127.0.0.1:3000/api/orders/42", { headers: { cookie: "a=b", accept: "*/*" } });
// Both warmed up first: whichever mitata measures first otherwise pays for the JIT and the
// collections the warm-up leaves behind (an order effect of several µs).
for (let i = 0; i < 200_000; i++) {
  await shaped.handle(request());
  await plain(request());
}
summary(() => {
  bench("the same work in a plain function", async () => void (await plain(request())));
  bench("a request through an Elysia app shaped like the gateway's", async () => void (await shaped.handle(request())));
});
await run({ colors: false });
console.log(`\nSQL queries per cache hit (over 999 hits): ${queriesPerHit}`);

await cached.close();
await uncached.close();
rmSync(dir, { recursive: true, force: true });
