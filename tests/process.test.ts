import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { startBackend, type TestBackend } from "./helpers/backend";
import { signUp, tempDir } from "./helpers/gateway";
import { ROOT, spawnGateway as spawnGatewayProcess } from "./helpers/process";
let backend: TestBackend;
const cleanups: (() => Promise<void> | void)[] = [];
beforeAll(() => {
  backend = startBackend();
  cleanups.push(() => backend.stop());
});
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** A gateway process against the test backend; killed at the end if still running. */
async function spawnGateway(command: string[], cwd: string, env: Record<string, string> = {}) {
  const gw = await spawnGatewayProcess(command, { cwd, env: { BACKEND_API_URL: backend.url, ...env } });
  cleanups.push(() => {
    if (gw.proc.exitCode === null) gw.proc.kill("SIGKILL");
  });
  return gw;
}

describe("graceful shutdown", () => {
  test("SIGTERM lets a slow proxied request finish, refuses new connections, and exits 0", async () => {
    const dir = tempDir();
    cleanups.push(() => dir.remove());
    const gw = await spawnGateway([process.execPath, join(ROOT, "src/index.ts")], ROOT, {
      DATABASE_URL: join(dir.path, "authgate.db"),
      SHUTDOWN_TIMEOUT_MS: "5000",
    });
    backend.trustGateway(gw.url, gw.url);
    const { cookie } = await signUp(gw.url);

    const before = backend.received.length;
    const slow = fetch(gw.url + "/api/slow-headers?ms=700", { headers: { cookie } }).then(async (r) => [r.status, await r.text()]);
    // Wait until the backend has the request in hand, then ask the gateway to stop.
    while (backend.received.length === before) await new Promise((resolve) => setImmediate(resolve));
    gw.proc.kill("SIGTERM");

    expect(await slow).toEqual([200, "worth the wait"]);
    expect(await gw.proc.exited).toBe(0);
    const refused = await fetch(gw.url + "/healthz").then(
      () => "answered",
      () => "refused",
    );
    expect(refused).toBe("refused");
    // Every stderr line is a JSON log record (Better Auth's own warnings included).
    const messages = gw.log().split("\n").filter(Boolean).map((line) => JSON.parse(line).msg);
    expect(messages).toContain("shutting down");
    expect(messages.at(-1)).toBe("stopped");
  });
});

describe("the compiled binary", () => {
  let binary: string;
  beforeAll(async () => {
    const buildDir = tempDir();
    cleanups.push(() => buildDir.remove());
    binary = join(buildDir.path, "authgate");
    // `npm run build`'s own command (bytecode, ES module format and all), with another --outfile.
    const script: string = (await Bun.file(join(ROOT, "package.json")).json()).scripts.build;
    const args = script.split(/\s+/);
    expect(args.slice(0, 2)).toEqual(["bun", "build"]);
    args[args.indexOf("--outfile") + 1] = binary;
    const build = Bun.spawn([process.execPath, ...args.slice(1)], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    if ((await build.exited) !== 0) throw new Error(await new Response(build.stderr).text());
  }, 60_000);

  test("--version and --help answer without any configuration", async () => {
    const version = Bun.spawnSync([binary, "--version"]);
    expect(version.exitCode).toBe(0);
    expect(version.stdout.toString().trim()).toBe((await Bun.file(join(ROOT, "package.json")).json()).version);
    const help = Bun.spawnSync([binary, "--help"]);
    expect(help.exitCode).toBe(0);
    for (const name of ["BACKEND_API_URL", "BETTER_AUTH_SECRET", "MAX_BODY_BYTES", "migrate", "healthcheck"]) {
      expect(help.stdout.toString()).toContain(name);
    }
  });

  test("alone in an empty directory, it migrates, signs up, proxies with a verifiable JWT and serves its docs offline", async () => {
    const empty = tempDir();
    cleanups.push(() => empty.remove());
    const alone = join(empty.path, "authgate");
    copyFileSync(binary, alone);
    mkdirSync(join(empty.path, "nested"));

    const migrate = Bun.spawnSync([alone, "migrate"], {
      cwd: empty.path,
      env: { PATH: "/usr/bin:/bin", DATABASE_URL: "./nested/authgate.db", BETTER_AUTH_SECRET: "binary-test-secret-binary-test-secret" },
    });
    expect(migrate.exitCode).toBe(0);
    expect(existsSync(join(empty.path, "nested/authgate.db"))).toBe(true);

    const gw = await spawnGateway([alone], empty.path, {}); // default DATABASE_URL: ./data/authgate.db
    expect(existsSync(join(empty.path, "data/authgate.db"))).toBe(true);
    backend.trustGateway(gw.url, gw.url);
    const { cookie, user } = await signUp(gw.url);
    const before = backend.received.length;
    const response = await fetch(gw.url + "/api/from-binary?x=1", { headers: { cookie } });
    expect(response.status).toBe(200);
    const seen = backend.received[before]!;
    expect(seen.target).toBe("/api/from-binary?x=1");
    expect(seen.jwtError).toBeUndefined();
    expect(seen.claims?.sub).toBe(user.id);

    const page = await (await fetch(gw.url + "/swagger")).text();
    expect(page).not.toMatch(/https?:\/\//);
    expect((await fetch(gw.url + "/swagger/assets/swagger-ui-bundle.js")).status).toBe(200);
    const spec = (await (await fetch(gw.url + "/swagger/json")).json()) as { paths: Record<string, unknown> };
    expect(spec.paths["/api/auth/sign-in/email"]).toBeDefined();

    const healthcheck = Bun.spawnSync([alone, "healthcheck"], { env: { PORT: new URL(gw.url).port, HOST: "127.0.0.1" } });
    expect(healthcheck.exitCode).toBe(0);
    gw.proc.kill("SIGTERM");
    expect(await gw.proc.exited).toBe(0);
    const down = Bun.spawnSync([alone, "healthcheck"], { env: { PORT: new URL(gw.url).port, HOST: "127.0.0.1" } });
    expect(down.exitCode).toBe(1);
  }, 30_000);
});
