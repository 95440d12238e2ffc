/**
 * Start-up: from spawning the process to its first proxied 200, side by side in one run.
 * Rows: the bare Bun proxy; the gateway from source and as the compiled binary (dist/authgate,
 * built first when missing or with --build), each on a fresh SQLite file (migrations and the
 * first signing key included) and on a database an earlier start created. The order of the
 * rows is rotated every round; medians with min–max.
 * Usage: bun bench/startup.ts [--rounds N] [--build] [--json FILE] [--baseline DIR]
 *
 * `--baseline DIR` adds the gateway of another checkout (an earlier commit, with its
 * node_modules) from source, fresh and existing database, to the same rounds.
 *
 * The gateway answers nothing before its auth worker is ready (Better Auth loaded, the schema
 * checked, a signing key at hand), so its first 200 from the public route is also the moment
 * it can serve a signed-in request.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compiledBinary, freePort, median, medianRange, numberFlag, printTable, ROOT, rotated, startPortPrinter, stringFlag } from "./lib";

const ROUNDS = numberFlag("rounds", 7);
const JSON_FILE = stringFlag("json");
const BASELINE = stringFlag("baseline");
const BINARY = await compiledBinary(process.argv.includes("--build"));

const backend = await startPortPrinter("bench/backend.ts");
const work = mkdtempSync(join(tmpdir(), "authgate-bench-startup-"));
// One public route: the first proxied 200 needs no user, and the request still crosses the
// whole pipeline (context, rules, route match, header rewrite, forward, log line, metrics).
writeFileSync(join(work, "authgate.toml"), `[[routes]]\nname = "public"\npath = "/api"\nupstream = "${backend.url}"\nauth = "none"\n`);

interface Row {
  name: string;
  command: string[];
  /** A database kept between this row's starts (the second start onward finds it migrated). */
  database?: "fresh" | "existing";
}
const rows: Row[] = [
  { name: "bare Bun proxy", command: [process.execPath, join(ROOT, "bench/bare-proxy.ts")] },
  { name: "gateway from source, fresh database", command: [process.execPath, join(ROOT, "src/index.ts")], database: "fresh" },
  { name: "gateway from source, existing database", command: [process.execPath, join(ROOT, "src/index.ts")], database: "existing" },
  { name: "binary, fresh database", command: [BINARY], database: "fresh" },
  { name: "binary, existing database", command: [BINARY], database: "existing" },
  ...(BASELINE
    ? [
        { name: "baseline from source, fresh database", command: [process.execPath, join(BASELINE, "src/index.ts")], database: "fresh" as const },
        { name: "baseline from source, existing database", command: [process.execPath, join(BASELINE, "src/index.ts")], database: "existing" as const },
      ]
    : []),
];
mkdirSync(join(work, "existing"));

/** Spawns, polls GET /api/hello every 2 ms until it answers 200, stops the process; returns ms. */
async function startOnce(row: Row, round: number): Promise<number> {
  const port = freePort();
  const dbDir = row.database === "existing" ? join(work, "existing", row.name.replace(/\W+/g, "-")) : join(work, `fresh-${round}-${port}`);
  mkdirSync(dbDir, { recursive: true });
  const started = performance.now();
  const proc = Bun.spawn(row.command, {
    cwd: work,
    env: {
      ...process.env,
      BACKEND: backend.url,
      PORT: String(port),
      HOST: "127.0.0.1",
      CONFIG_FILE: join(work, "authgate.toml"),
      DATABASE_URL: join(dbDir, "authgate.db"),
      BETTER_AUTH_SECRET: "bench-secret-bench-secret-bench-secret-0",
      BETTER_AUTH_URL: `http://127.0.0.1:${port}`,
    },
    stdout: "ignore",
    stderr: "ignore",
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    for (;;) {
      const ok = await fetch(url + "/api/hello").then((r) => r.status === 200, () => false);
      if (ok) return performance.now() - started;
      if (proc.exitCode !== null) throw new Error(`${row.name}: exited during start-up (${proc.exitCode})`);
      await Bun.sleep(2);
    }
  } finally {
    proc.kill("SIGTERM");
    await proc.exited;
    if (row.database === "fresh") rmSync(dbDir, { recursive: true, force: true });
  }
}

const results = new Map<string, number[]>(rows.map((row) => [row.name, []]));
try {
  // Warm-up: the OS's file cache, and the "existing" databases created once.
  for (const row of rows) await startOnce(row, -1);
  for (let round = 0; round < ROUNDS; round++) {
    for (const row of rotated(rows, round)) results.get(row.name)!.push(await startOnce(row, round));
  }
} finally {
  await backend.stop();
  rmSync(work, { recursive: true, force: true });
}

const bare = median(results.get("bare Bun proxy")!);
console.log(`\nspawn → first proxied 200 (GET /api/hello on a public route), ${ROUNDS} starts per row, order rotated; median (min–max)\n`);
printTable(
  ["row", "ms", "× bare"],
  rows.map((row) => {
    const values = results.get(row.name)!;
    return [row.name, medianRange(values), (median(values) / bare).toFixed(1)];
  }),
);
if (JSON_FILE) {
  writeFileSync(JSON_FILE, JSON.stringify({ rounds: ROUNDS, rows: rows.map((row) => ({ name: row.name, ms: results.get(row.name), medianMs: median(results.get(row.name)!) })) }, null, 2));
  console.log(`\nall starts: ${JSON_FILE}`);
}
