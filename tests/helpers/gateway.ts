import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createGateway, type Gateway, type GatewayOptions } from "../../src/app";
import { loadConfig } from "../../src/config";
import { openDatabase, type GatewayDatabase } from "../../src/db";
import type { Logger } from "../../src/ops/log";

export interface RunningGateway {
  url: string;
  gateway: Gateway;
  /** The gateway's SQLite file, opened by the test: what another instance or an operator would change. */
  db: GatewayDatabase;
  logLines: string[];
  stop(): Promise<void>;
}

/** A port nobody listens on right now (for the gateway's own URL, or a dead backend). */
export function freePort(): number {
  const probe = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
  const port = probe.port!;
  probe.stop(true);
  return port;
}

export function tempDir(): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), "authgate-test-"));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Collects the gateway's log lines so tests can check what is (not) logged. */
export function memoryLogger(lines: string[]): Logger {
  const emit = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
    lines.push(JSON.stringify({ level, msg, ...fields }));
  return { info: emit("info"), warn: emit("warn"), error: emit("error") };
}

/** Starts a real gateway on a loopback port with its SQLite file in `dataDir`. */
export async function startGateway(
  env: Record<string, string>,
  dataDir: string,
  options: Omit<GatewayOptions, "logger"> = {},
): Promise<RunningGateway> {
  const port = freePort();
  const config = loadConfig({
    PORT: String(port),
    HOST: "127.0.0.1",
    DATABASE_URL: join(dataDir, "authgate.db"),
    BETTER_AUTH_SECRET: "test-secret-test-secret-test-secret-0123",
    BETTER_AUTH_URL: `http://127.0.0.1:${port}`,
    ...env,
  });
  const logLines: string[] = [];
  const gateway = await createGateway(config, { ...options, logger: memoryLogger(logLines) });
  gateway.listen();
  const db = openDatabase(config.databaseUrl);
  return {
    url: `http://127.0.0.1:${port}`,
    gateway,
    db,
    logLines,
    async stop() {
      await gateway.close();
      await db.close();
    },
  };
}

/** Signs a new user up and returns the `Cookie` header value for their session. */
export async function signUp(gatewayUrl: string, email = `user-${crypto.randomUUID()}@example.test`) {
  const response = await fetch(`${gatewayUrl}/api/auth/sign-up/email`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password: "correct horse battery", name: "Test User" }),
  });
  if (response.status !== 200) throw new Error(`sign-up failed: ${response.status} ${await response.text()}`);
  const body = (await response.json()) as { user: { id: string; email: string } };
  return { cookie: cookieHeader(response), user: body.user };
}

/** The `Cookie` request header a browser would send back for a response's `Set-Cookie`s. */
export function cookieHeader(response: Response): string {
  return response.headers
    .getSetCookie()
    .map((cookie) => cookie.split(";")[0]!)
    .join("; ");
}
