/**
 * Idle memory: the resident set (RSS) of the bare Bun proxy and of the gateway, from source
 * and as the compiled binary (dist/authgate, built when missing), at three moments: started
 * (first 200), after one sign-up and sign-in, and after 2 000 authenticated requests, each
 * read after 2 s of quiet. Several starts per row, rows rotated; medians with min–max.
 * Usage: bun bench/footprint.ts [--rounds N] [--json FILE] [--baseline DIR]
 *
 * `--baseline DIR` adds the gateway of another checkout (an earlier commit, with its
 * node_modules), from source, to the same rounds.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compiledBinary, freePort, medianRange, numberFlag, printTable, ROOT, rotated, rssMb, startPortPrinter, stringFlag } from "./lib";

const ROUNDS = numberFlag("rounds", 3);
const QUIET_MS = 2000;
const JSON_FILE = stringFlag("json");
const BASELINE = stringFlag("baseline");
const BINARY = await compiledBinary();

const backend = await startPortPrinter("bench/backend.ts");
const rows = [
  { name: "bare Bun proxy", command: [process.execPath, join(ROOT, "bench/bare-proxy.ts")], gateway: false },
  { name: "gateway from source", command: [process.execPath, join(ROOT, "src/index.ts")], gateway: true },
  { name: "binary", command: [BINARY], gateway: true },
  ...(BASELINE ? [{ name: "baseline from source", command: [process.execPath, join(BASELINE, "src/index.ts")], gateway: true }] : []),
];
type Moments = { started: number; signedIn: number; afterLoad: number };
const results = new Map<string, Moments[]>(rows.map((row) => [row.name, []]));

async function measure(row: (typeof rows)[number]): Promise<Moments> {
  const port = freePort();
  const dir = mkdtempSync(join(tmpdir(), "authgate-bench-footprint-"));
  const url = `http://127.0.0.1:${port}`;
  const proc = Bun.spawn(row.command, {
    cwd: dir,
    env: {
      ...process.env,
      BACKEND: backend.url,
      BACKEND_API_URL: backend.url,
      PORT: String(port),
      HOST: "127.0.0.1",
      DATABASE_URL: join(dir, "authgate.db"),
      BETTER_AUTH_SECRET: "bench-secret-bench-secret-bench-secret-0",
      BETTER_AUTH_URL: url,
    },
    stdout: "ignore",
    stderr: "ignore",
  });
  try {
    while (!(await fetch(url + (row.gateway ? "/healthz" : "/api/hello")).then((r) => r.ok, () => false))) await Bun.sleep(5);
    await Bun.sleep(QUIET_MS);
    const started = rssMb(proc.pid);
    let headers: Record<string, string> = {};
    if (row.gateway) {
      const credentials = { email: `bench-${crypto.randomUUID()}@example.test`, password: "bench password 123" };
      const json = { "content-type": "application/json" };
      const up = await fetch(url + "/api/auth/sign-up/email", { method: "POST", headers: json, body: JSON.stringify({ ...credentials, name: "Bench" }) });
      if (!up.ok) throw new Error(`sign-up: ${up.status}`);
      const signIn = await fetch(url + "/api/auth/sign-in/email", { method: "POST", headers: json, body: JSON.stringify(credentials) });
      if (!signIn.ok) throw new Error(`sign-in: ${signIn.status}`);
      headers = { cookie: signIn.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ") };
    }
    await Bun.sleep(QUIET_MS);
    const signedIn = rssMb(proc.pid);
    // 2 000 requests, 50 at a time.
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        for (let i = 0; i < 40; i++) {
          const response = await fetch(url + "/api/hello", { headers });
          if (response.status !== 200) throw new Error(`${row.name}: ${response.status}`);
          await response.arrayBuffer();
        }
      }),
    );
    await Bun.sleep(QUIET_MS);
    return { started, signedIn, afterLoad: rssMb(proc.pid) };
  } finally {
    proc.kill("SIGTERM");
    await proc.exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const row of rotated(rows, round)) results.get(row.name)!.push(await measure(row));
  }
} finally {
  await backend.stop();
}

console.log(`\nRSS in MB after ${QUIET_MS / 1000} s of quiet, ${ROUNDS} starts per row; median (min–max)\n`);
printTable(
  ["row", "started", "after sign-up and sign-in", "after 2 000 requests"],
  rows.map((row) => {
    const runs = results.get(row.name)!;
    return [row.name, medianRange(runs.map((r) => r.started)), row.gateway ? medianRange(runs.map((r) => r.signedIn)) : "–", medianRange(runs.map((r) => r.afterLoad))];
  }),
);
if (JSON_FILE) {
  writeFileSync(JSON_FILE, JSON.stringify({ rounds: ROUNDS, quietMs: QUIET_MS, rows: rows.map((row) => ({ name: row.name, runs: results.get(row.name) })) }, null, 2));
  console.log(`\nall readings: ${JSON_FILE}`);
}
