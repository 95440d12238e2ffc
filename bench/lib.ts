import type { Subprocess } from "bun";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const ROOT = join(import.meta.dir, "..");

export interface Service {
  proc: Subprocess;
  url: string;
  stop(): Promise<void>;
}

/** The first line a helper prints on stdout (its port, or what it is ready with). */
export async function firstLine(proc: Subprocess<"ignore", "pipe", "inherit" | "ignore">, what: string): Promise<string> {
  const reader = proc.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${what} exited before it was ready`);
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return text.split("\n")[0]!.trim();
}

/** Starts a bench helper that prints its port as its first stdout line. */
export async function startPortPrinter(script: string, env: Record<string, string> = {}): Promise<Service> {
  const proc = Bun.spawn([process.execPath, join(ROOT, script)], { env: { ...process.env, ...env }, stdout: "pipe", stderr: "inherit" });
  const port = await firstLine(proc, script);
  return { proc, url: `http://127.0.0.1:${port}`, stop: () => stopProcess(proc) };
}

/**
 * Starts the real gateway (src/index.ts of `root`: this checkout, or another one to compare
 * with) on a fresh SQLite file and waits for /healthz. With a CONFIG_FILE in `extraEnv`, the
 * table is the file's and BACKEND_API_URL is not set.
 */
export async function startGateway(
  backendUrl: string,
  extraEnv: Record<string, string> = {},
  root = ROOT,
): Promise<Service & { startupMs: number }> {
  const dir = mkdtempSync(join(tmpdir(), "authgate-bench-"));
  const port = freePort();
  const started = performance.now();
  const proc = Bun.spawn([process.execPath, join(root, "src/index.ts")], {
    cwd: root,
    env: {
      ...process.env,
      PORT: String(port),
      HOST: "127.0.0.1",
      ...(extraEnv.CONFIG_FILE === undefined && { BACKEND_API_URL: backendUrl }),
      DATABASE_URL: join(dir, "authgate.db"),
      BETTER_AUTH_SECRET: "bench-secret-bench-secret-bench-secret-0",
      BETTER_AUTH_URL: `http://127.0.0.1:${port}`,
      MAX_BODY_BYTES: "0",
      ...extraEnv,
    },
    stdout: "ignore",
    stderr: "ignore",
  });
  const url = `http://127.0.0.1:${port}`;
  for (;;) {
    const ok = await fetch(url + "/healthz").then((r) => r.ok, () => false);
    if (ok) break;
    if (proc.exitCode !== null) throw new Error("gateway exited during start-up");
    await Bun.sleep(5);
  }
  const startupMs = performance.now() - started;
  return {
    proc,
    url,
    startupMs,
    async stop() {
      await stopProcess(proc);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function stopProcess(proc: Subprocess) {
  proc.kill("SIGTERM");
  await proc.exited;
}

export function freePort(): number {
  const probe = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
  const port = probe.port!;
  probe.stop(true);
  return port;
}

/** Resident memory of a process, in MB, from /proc. */
export function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

/** Samples a process's RSS every `everyMs` while `work` runs; returns the peak and the baseline. */
export async function withPeakRss<T>(pid: number | undefined, work: () => Promise<T>, everyMs = 20) {
  if (pid === undefined) return { result: await work(), baseMb: 0, peakMb: 0 };
  const baseMb = rssMb(pid);
  let peakMb = baseMb;
  const timer = setInterval(() => (peakMb = Math.max(peakMb, rssMb(pid))), everyMs);
  try {
    const result = await work();
    peakMb = Math.max(peakMb, rssMb(pid));
    return { result, baseMb, peakMb };
  } finally {
    clearInterval(timer);
  }
}

export async function signUpCookie(gatewayUrl: string): Promise<string> {
  const response = await fetch(gatewayUrl + "/api/auth/sign-up/email", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: `bench-${crypto.randomUUID()}@example.test`, password: "bench password 123", name: "Bench" }),
  });
  if (!response.ok) throw new Error(`sign-up failed: ${response.status}`);
  return response.headers
    .getSetCookie()
    .map((c) => c.split(";")[0])
    .join("; ");
}

export const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** `median (min–max)`, the cell every table prints. */
export function medianRange(values: number[], digits = 0): string {
  return `${median(values).toFixed(digits)} (${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)})`;
}

/** The items in round `round`'s order: rotated, so that none always runs first or last. */
export function rotated<T>(items: readonly T[], round: number): T[] {
  return items.map((_, i) => items[(i + round) % items.length]!);
}

/** Builds dist/authgate with `npm run build` when it is missing (or always, with `rebuild`); returns its path. */
export async function compiledBinary(rebuild = false): Promise<string> {
  const binary = join(ROOT, "dist/authgate");
  if (rebuild || !existsSync(binary)) {
    console.log("building dist/authgate (npm run build)…");
    const code = await Bun.spawn(["npm", "run", "-s", "build"], { cwd: ROOT, stdout: "ignore", stderr: "inherit" }).exited;
    if (code !== 0) process.exit(code);
  }
  return binary;
}

export function printTable(headers: string[], rows: (string | number)[][]) {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) => "| " + r.map((c, i) => c.padEnd(widths[i]!)).join(" | ") + " |";
  console.log(line(headers));
  console.log("|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|");
  for (const r of cells.slice(1)) console.log(line(r));
}

/** `--name VALUE` from the command line (a file, a checkout), or undefined. */
export function stringFlag(name: string): string | undefined {
  const at = process.argv.indexOf(`--${name}`);
  return at === -1 ? undefined : process.argv[at + 1];
}

/** `--name N` from the command line, or `fallback`. */
export function numberFlag(name: string, fallback: number): number {
  const args = process.argv.slice(2);
  const at = args.indexOf(`--${name}`);
  return at === -1 ? fallback : Number(args[at + 1]);
}
