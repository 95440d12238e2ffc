import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./gateway";

/**
 * A PostgreSQL server of the test's own (initdb in a temp dir, on a free loopback port), so
 * that a test can stop and start it under traffic without touching the machine's shared one.
 * initdb refuses to run as root, so as root the server runs as the `postgres` user.
 */
export interface PrivatePostgres {
  url: string;
  /** `pg_ctl stop -m fast`: connections are terminated (FATAL 57P01), as in a real restart. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server (if running) and removes its directory. */
  remove(): Promise<void>;
}

/** Debian's server binaries (package postgresql), or undefined when there are none. */
export function postgresBinDir(): string | undefined {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const version = readdirSync(root).sort((a, b) => Number(b) - Number(a))[0];
  const bin = version && join(root, version, "bin");
  return bin && existsSync(join(bin, "initdb")) && existsSync(join(bin, "pg_ctl")) ? bin : undefined;
}

const asRoot = process.getuid?.() === 0;

async function run(command: string[]): Promise<void> {
  const proc = Bun.spawn(asRoot ? ["runuser", "-u", "postgres", "--", ...command] : command, { stdout: "pipe", stderr: "pipe" });
  const [code, out, err] = await Promise.all([proc.exited, new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  if (code !== 0) throw new Error(`${command.join(" ")} exited with ${code}: ${err || out}`);
}

export async function startPrivatePostgres(bin = postgresBinDir()!): Promise<PrivatePostgres> {
  const dir = mkdtempSync(join(tmpdir(), "authgate-pg-"));
  if (asRoot) chownSync(dir, Number(Bun.spawnSync(["id", "-u", "postgres"]).stdout.toString().trim()), -1);
  const data = join(dir, "data");
  const port = freePort();
  await run([join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"]);
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
  // -w: pg_ctl returns once the server accepts connections, or has stopped.
  const start = () => run([join(bin, "pg_ctl"), "-D", data, "-o", options, "-l", join(dir, "log"), "-w", "start"]);
  const stop = () => run([join(bin, "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"]);
  await start();
  let running = true;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async stop() {
      await stop();
      running = false;
    },
    async start() {
      await start();
      running = true;
    },
    async remove() {
      if (running) await stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
