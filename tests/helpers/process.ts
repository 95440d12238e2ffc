import { join } from "node:path";
import { freePort } from "./gateway";

export const ROOT = join(import.meta.dir, "../..");

export interface GatewayProcess {
  url: string;
  proc: ReturnType<typeof Bun.spawn>;
  /** Everything written to stderr so far. */
  log(): string;
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number>;
}

/**
 * Spawns a gateway process (`bun src/index.ts` or the compiled binary) on a free loopback
 * port and resolves once it logs that it listens (no polling).
 */
export async function spawnGateway(
  command: string[] = [process.execPath, join(ROOT, "src/index.ts")],
  { cwd = ROOT, env = {} as Record<string, string>, port = freePort() } = {},
): Promise<GatewayProcess> {
  const proc = Bun.spawn(command, {
    cwd,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "",
      PORT: String(port),
      HOST: "127.0.0.1",
      BETTER_AUTH_URL: `http://127.0.0.1:${port}`,
      BETTER_AUTH_SECRET: "process-test-secret-process-test-secret",
      ...env,
    },
    stdout: "pipe",
    stderr: "pipe",
  });
  let stderr = "";
  const reader = proc.stderr.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`gateway exited before listening:\n${stderr}`);
    stderr += decoder.decode(value);
    if (stderr.includes('"msg":"authgate listening"')) break;
  }
  // Keep collecting the rest of the log in the background.
  void (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      stderr += decoder.decode(value);
    }
  })();
  return {
    url: `http://127.0.0.1:${port}`,
    proc,
    log: () => stderr,
    async stop() {
      if (proc.exitCode === null) proc.kill("SIGTERM");
      return proc.exited;
    },
  };
}
