/**
 * Requests/s and latency through each path, measured side by side in one run: scenarios
 * alternate within every round, several rounds, medians with min–max.
 * Usage: bun bench/http.ts [--rounds N] [--seconds N] [--baseline DIR] [--json FILE]
 *
 * Besides the default one-route table, a gateway with a 100-route table (the request matching
 * the deepest of them) shows what matching costs as the table grows. `--baseline DIR` adds the
 * gateway of another checkout (an earlier commit, with its node_modules) to the same rounds,
 * for a before/after measured side by side.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { median, medianRange, numberFlag, printTable, rotated, rssMb, signUpCookie, startGateway, startPortPrinter, stringFlag, withPeakRss } from "./lib";
import { startNginx } from "./nginx";
import { wrk, type LoadResult } from "./wrk";

const ROUNDS = numberFlag("rounds", 3);
const SECONDS = numberFlag("seconds", 5);
const BASELINE = stringFlag("baseline");
const JSON_FILE = stringFlag("json");

if (!Bun.which("wrk")) {
  console.error("bench/http.ts needs wrk: apt-get install wrk (and nginx-light for the reference row)");
  process.exit(1);
}

const backend = await startPortPrinter("bench/backend.ts");
const bare = await startPortPrinter("bench/bare-proxy.ts", { BACKEND: backend.url });
const startups: number[] = [];
let gateway = await startGateway(backend.url);
startups.push(gateway.startupMs);
// Two more cold starts for the start-up figure; the last one stays up for the load.
for (let i = 0; i < 2; i++) {
  await gateway.stop();
  gateway = await startGateway(backend.url);
  startups.push(gateway.startupMs);
}
const nginx = await startNginx(backend.url);
const cookie = await signUpCookie(gateway.url);
await (await fetch(gateway.url + "/api/warm", { headers: { cookie } })).arrayBuffer();
const idleRssMb = rssMb(gateway.proc.pid);

// 100 routes: 98 services under /api, /api itself and a static `/`; the request goes to /api/svc97/v1/….
const tableDir = mkdtempSync(join(tmpdir(), "authgate-bench-table-"));
const routes = [
  ...Array.from({ length: 98 }, (_, i) => `[[routes]]\nname = "svc${i}"\npath = "/api/svc${i}/v1"\nupstream = "${backend.url}"\n`),
  `[[routes]]\nname = "api"\npath = "/api"\nupstream = "${backend.url}"\n`,
  `[[routes]]\nname = "app"\npath = "/"\nstatic = "./www"\nauth = "none"\n`,
];
mkdirSync(join(tableDir, "www"));
writeFileSync(join(tableDir, "authgate.toml"), routes.join("\n"));
const wide = await startGateway(backend.url, { CONFIG_FILE: join(tableDir, "authgate.toml") });
const wideCookie = await signUpCookie(wide.url);
const baseline = BASELINE ? await startGateway(backend.url, {}, BASELINE) : undefined;
const baselineCookie = baseline ? await signUpCookie(baseline.url) : "";

interface Scenario {
  name: string;
  url: string;
  headers?: Record<string, string>;
  expectStatus: "2xx" | "401";
  pid?: number;
}
const scenarios: Scenario[] = [
  { name: "direct (backend)", url: backend.url + "/api/hello", expectStatus: "2xx" },
  { name: "bare Bun proxy", url: bare.url + "/api/hello", expectStatus: "2xx", pid: bare.proc.pid },
  { name: "gateway, authenticated", url: gateway.url + "/api/hello", headers: { cookie }, expectStatus: "2xx", pid: gateway.proc.pid },
  { name: "gateway, 401", url: gateway.url + "/api/hello", expectStatus: "401", pid: gateway.proc.pid },
  { name: "gateway, 100 routes, authenticated", url: wide.url + "/api/svc97/v1/hello", headers: { cookie: wideCookie }, expectStatus: "2xx", pid: wide.proc.pid },
  ...(baseline
    ? [
        { name: "baseline, authenticated", url: baseline.url + "/api/hello", headers: { cookie: baselineCookie }, expectStatus: "2xx" as const, pid: baseline.proc.pid },
        { name: "baseline, 401", url: baseline.url + "/api/hello", expectStatus: "401" as const, pid: baseline.proc.pid },
      ]
    : []),
  ...(nginx ? [{ name: "nginx (1 worker)", url: nginx.url + "/api/hello", expectStatus: "2xx" as const, pid: nginx.proc.pid }] : []),
];

const results = new Map<string, { runs: LoadResult[]; peakRss: number[] }>(scenarios.map((s) => [s.name, { runs: [], peakRss: [] }]));
try {
  for (const s of scenarios) await wrk(s.url, { seconds: 1, headers: s.headers }); // warm-up
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate the order each round so no scenario always runs first or last.
    for (const s of rotated(scenarios, round)) {
      const { result, peakMb } = await withPeakRss(s.pid, () => wrk(s.url, { seconds: SECONDS, headers: s.headers }), 100);
      const failed = s.expectStatus === "2xx" ? result.non2xx : result.requests - result.non2xx;
      if (failed > 0) throw new Error(`${s.name}: ${failed} responses with an unexpected status`);
      results.get(s.name)!.runs.push(result);
      results.get(s.name)!.peakRss.push(peakMb);
    }
  }
} finally {
  await Promise.all([gateway.stop(), wide.stop(), baseline?.stop(), bare.stop(), backend.stop(), nginx?.stop()]);
  rmSync(tableDir, { recursive: true, force: true });
}

const bareRuns = results.get("bare Bun proxy")!.runs;
const bareRps = median(bareRuns.map((r) => r.requestsPerSecond));
const bareP99 = median(bareRuns.map((r) => r.p99Ms));

console.log(`\nwrk -t1 -c50, ${SECONDS} s per run, ${ROUNDS} rounds alternating; median (min–max)${BASELINE ? `; baseline: ${BASELINE}` : ""}\n`);
printTable(
  ["scenario", "requests/s", "× bare", "p50 ms", "p99 ms", "p99 × bare", "peak RSS MB"],
  scenarios.map((s) => {
    const { runs, peakRss } = results.get(s.name)!;
    const rps = runs.map((r) => r.requestsPerSecond);
    const p99 = runs.map((r) => r.p99Ms);
    return [
      s.name,
      medianRange(rps, 0),
      (median(rps) / bareRps).toFixed(2),
      medianRange(runs.map((r) => r.p50Ms), 2),
      medianRange(p99, 2),
      (median(p99) / bareP99).toFixed(2),
      s.pid ? median(peakRss).toFixed(0) : "–",
    ];
  }),
);
console.log(`\ngateway RSS right after sign-up (bench/footprint.ts reads it after 2 s of quiet, when what the sign-up used has been given back): ${idleRssMb.toFixed(0)} MB`);
console.log(`gateway start-up to first 200 on /healthz (fresh database): ${medianRange(startups, 0)} ms`);
if (!nginx) console.log("nginx not installed (apt-get install nginx-light): reference row skipped");
if (JSON_FILE) {
  writeFileSync(
    JSON_FILE,
    JSON.stringify(
      {
        load: "wrk -t1 -c50",
        seconds: SECONDS,
        rounds: ROUNDS,
        baseline: BASELINE ?? null,
        rssAfterSignUpMb: idleRssMb,
        startupMs: startups,
        scenarios: scenarios.map((s) => {
          const { runs, peakRss } = results.get(s.name)!;
          const rps = median(runs.map((r) => r.requestsPerSecond));
          return { name: s.name, medianRequestsPerSecond: rps, ratioToBare: rps / bareRps, p99RatioToBare: median(runs.map((r) => r.p99Ms)) / bareP99, runs, peakRssMb: peakRss };
        }),
      },
      null,
      2,
    ),
  );
  console.log(`every run: ${JSON_FILE}`);
}
