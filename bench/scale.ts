/**
 * Scaling rows, side by side in one run: the gateway on PostgreSQL vs on SQLite (session cache
 * hit, and miss with SESSION_CACHE_SECONDS=0), and two instances behind nginx vs one.
 * Needs PostgreSQL (BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test: a
 * scratch database is created and dropped) and nginx; wrk as in bench/http.ts.
 * Usage: bun bench/scale.ts [--rounds N] [--seconds N]
 */
import pg from "pg";
import { type Service, median, medianRange, numberFlag, printTable, rotated, signUpCookie, startGateway, startPortPrinter } from "./lib";
import { startNginx } from "./nginx";
import { wrk, type LoadResult } from "./wrk";

const ROUNDS = numberFlag("rounds", 3);
const SECONDS = numberFlag("seconds", 5);
const ADMIN_URL = process.env.BENCH_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";

const admin = new pg.Client({ connectionString: ADMIN_URL });
try {
  await admin.connect();
} catch {
  console.log(`PostgreSQL not reachable at ${new URL(ADMIN_URL).host}: scaling rows skipped`);
  process.exit(0);
}
const database = `authgate_bench_${crypto.randomUUID().replaceAll("-", "")}`;
await admin.query(`create database ${database}`);
const pgUrl = new URL(ADMIN_URL);
pgUrl.pathname = `/${database}`;

const services: Service[] = [];
const start = async <T extends Service>(service: Promise<T>) => {
  const started = await service;
  services.push(started);
  return started;
};
try {
  const backend = await start(startPortPrinter("bench/backend.ts"));
  const origin = { BETTER_AUTH_URL: "http://authgate.bench" };
  const sqlite = await start(startGateway(backend.url, origin));
  const sqliteNoCache = await start(startGateway(backend.url, { ...origin, SESSION_CACHE_SECONDS: "0" }));
  const postgres = await start(startGateway(backend.url, { ...origin, DATABASE_URL: pgUrl.href }));
  const postgresNoCache = await start(startGateway(backend.url, { ...origin, DATABASE_URL: pgUrl.href, SESSION_CACHE_SECONDS: "0" }));
  const second = await start(startGateway(backend.url, { ...origin, DATABASE_URL: pgUrl.href }));
  const nginxOne = await start(startNginx(postgres.url) as Promise<Service>);
  const nginxTwo = await start(startNginx([postgres.url, second.url]) as Promise<Service>);

  // A session in each database; the PostgreSQL one is valid on every PostgreSQL instance.
  const sqliteCookie = await signUpCookie(sqlite.url);
  const sqliteNoCacheCookie = await signUpCookie(sqliteNoCache.url);
  const pgCookie = await signUpCookie(postgres.url);

  const scenarios: { name: string; url: string; cookie: string }[] = [
    { name: "SQLite, cache hit", url: sqlite.url, cookie: sqliteCookie },
    { name: "PostgreSQL, cache hit", url: postgres.url, cookie: pgCookie },
    { name: "SQLite, cache miss (SESSION_CACHE_SECONDS=0)", url: sqliteNoCache.url, cookie: sqliteNoCacheCookie },
    { name: "PostgreSQL, cache miss (SESSION_CACHE_SECONDS=0)", url: postgresNoCache.url, cookie: pgCookie },
    { name: "nginx → 1 instance (PostgreSQL)", url: nginxOne.url, cookie: pgCookie },
    { name: "nginx → 2 instances (PostgreSQL)", url: nginxTwo.url, cookie: pgCookie },
  ];
  const results = new Map<string, LoadResult[]>(scenarios.map((s) => [s.name, []]));
  for (const s of scenarios) await wrk(s.url + "/api/hello", { seconds: 1, headers: { cookie: s.cookie } });
  for (let round = 0; round < ROUNDS; round++) {
    for (const s of rotated(scenarios, round)) {
      const result = await wrk(s.url + "/api/hello", { seconds: SECONDS, headers: { cookie: s.cookie } });
      if (result.non2xx > 0) throw new Error(`${s.name}: ${result.non2xx} responses were not 2xx`);
      results.get(s.name)!.push(result);
    }
  }
  const baseline = median(results.get("SQLite, cache hit")!.map((r) => r.requestsPerSecond));
  console.log(`\nwrk -t1 -c50, ${SECONDS} s per run, ${ROUNDS} rounds alternating; median (min–max)\n`);
  printTable(
    ["scenario", "requests/s", "× SQLite hit", "p50 ms", "p99 ms"],
    scenarios.map((s) => {
      const runs = results.get(s.name)!;
      const rps = runs.map((r) => r.requestsPerSecond);
      return [s.name, medianRange(rps, 0), (median(rps) / baseline).toFixed(2), medianRange(runs.map((r) => r.p50Ms), 2), medianRange(runs.map((r) => r.p99Ms), 2)];
    }),
  );
} finally {
  for (const service of services.reverse()) await service.stop();
  await admin.query(`drop database if exists ${database} with (force)`);
  await admin.end();
}
