/**
 * The ablation ladder: from the bare Bun proxy, one thing the gateway does per request added at
 * a time (bench/ladder-steps.ts), up to authgate itself (whose last step is Elysia's routing and
 * `resolve`). Every rung is its own process, measured side by side in one run with wrk, rounds
 * rotated; a step's cost is its rung against the one before, as the median of the per-round
 * ratios (a round's noise hits both alike).
 * Usage: bun bench/ladder.ts [--rounds N] [--seconds N] [--json FILE]
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { firstLine, freePort, median, numberFlag, printTable, ROOT, signUpCookie, startGateway, startPortPrinter, rotated, type Service, stringFlag } from "./lib";
import { LADDER_STEPS } from "./ladder-steps";
import { wrk, type LoadResult } from "./wrk";

const ROUNDS = numberFlag("rounds", 5);
const SECONDS = numberFlag("seconds", 3);
const JSON_FILE = stringFlag("json");

if (!Bun.which("wrk")) {
  console.error("bench/ladder.ts needs wrk: apt-get install wrk");
  process.exit(1);
}

/** A rung: bench/ladder-server.ts with the first `steps` steps (and its session cookie). */
async function startRung(backend: string, steps: number, extra: Record<string, string> = {}): Promise<Service & { cookie: string }> {
  const port = freePort();
  const proc = Bun.spawn([process.execPath, join(ROOT, "bench/ladder-server.ts")], {
    env: { ...process.env, BACKEND: backend, STEPS: String(steps), PORT: String(port), ...extra },
    stdout: "pipe",
    stderr: "ignore",
  });
  const { cookie } = JSON.parse(await firstLine(proc, `ladder rung ${steps}`)) as { cookie: string };
  return {
    proc,
    url: `http://127.0.0.1:${port}`,
    cookie,
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
}

const backend = await startPortPrinter("bench/backend.ts");
const rows: { name: string; service: Service; cookie?: string }[] = [];
try {
  rows.push({ name: "bare Bun proxy, without request.signal", service: await startRung(backend.url, 0, { NO_SIGNAL: "1" }) });
  rows.push({ name: "bare Bun proxy (fetch with request.signal)", service: await startRung(backend.url, 0) });
  for (let steps = 1; steps <= LADDER_STEPS.length; steps++) {
    const rung = await startRung(backend.url, steps);
    rows.push({ name: LADDER_STEPS[steps - 1]!.label, service: rung, cookie: rung.cookie });
  }
  const gateway = await startGateway(backend.url);
  rows.push({ name: "+ Elysia's routing and resolve = authgate", service: gateway, cookie: await signUpCookie(gateway.url) });

  const runs = new Map<string, LoadResult[]>(rows.map((row) => [row.name, []]));
  const go = (row: (typeof rows)[number], seconds: number) =>
    wrk(row.service.url + "/api/hello", { seconds, headers: row.cookie ? { cookie: row.cookie } : {} });
  for (const row of rows) await go(row, 1); // warm-up
  for (let round = 0; round < ROUNDS; round++) {
    for (const row of rotated(rows, round)) {
      const result = await go(row, SECONDS);
      if (result.non2xx > 0) throw new Error(`${row.name}: ${result.non2xx} responses that were not 2xx`);
      runs.get(row.name)!.push(result);
    }
    console.error(`round ${round + 1}/${ROUNDS} done`);
  }

  const rps = (name: string) => runs.get(name)!.map((r) => r.requestsPerSecond);
  const bareName = rows[1]!.name;
  const perRound = (name: string, reference: string) => median(rps(name).map((value, i) => value / rps(reference)[i]!));
  const table = rows.map((row, index) => {
    const previous = index <= 1 ? bareName : rows[index - 1]!.name;
    return {
      rung: row.name,
      requestsPerSecond: Math.round(median(rps(row.name))),
      timesPrevious: index <= 1 ? null : perRound(row.name, previous),
      timesBare: perRound(row.name, bareName),
      microsecondsAdded: index <= 1 ? null : 1e6 / median(rps(row.name)) - 1e6 / median(rps(previous)),
      p99Ms: median(runs.get(row.name)!.map((r) => r.p99Ms)),
    };
  });
  console.log(`\nwrk -t1 -c50, ${SECONDS} s per run, ${ROUNDS} rounds rotated; medians (ratios: median of the per-round ratios)\n`);
  printTable(
    ["rung", "requests/s", "× previous", "× bare", "µs per request added", "p99 ms"],
    table.map((row) => [
      row.rung,
      row.requestsPerSecond,
      row.timesPrevious === null ? "–" : row.timesPrevious.toFixed(2),
      row.timesBare.toFixed(2),
      row.microsecondsAdded === null ? "–" : row.microsecondsAdded.toFixed(1),
      row.p99Ms.toFixed(2),
    ]),
  );
  if (JSON_FILE) {
    writeFileSync(JSON_FILE, JSON.stringify({ rounds: ROUNDS, seconds: SECONDS, rows: table, runs: Object.fromEntries(runs) }, null, 2));
    console.log(`\nfull results: ${JSON_FILE}`);
  }
} finally {
  await Promise.all([...rows.map((row) => row.service.stop()), backend.stop()]);
}
