import { afterAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const REPO_ROOT = resolve(import.meta.dir, "..");
const AUTH_TABLES = ["account", "jwks", "session", "user", "verification"];
/** A high-entropy secret: a low-entropy one makes Better Auth print a (non-JSON) warning. */
const SECRET = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
/** Spawning bun and running Better Auth's migrations takes a while on a cold cache. */
const TIMEOUT_MS = 30_000;

const tempDirs: string[] = [];
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "authgate-cli-"));
  tempDirs.push(dir);
  return dir;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `bun src/index.ts ...args` with exactly `env` (plus PATH and HOME): nothing leaks in
 * from the test runner's environment, notably its NODE_ENV=test or a BETTER_AUTH_SECRET.
 */
async function runCli(args: string[], env: Record<string, string>): Promise<Run> {
  const proc = Bun.spawn([process.execPath, "src/index.ts", ...args], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? tmpdir(), ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { code, stdout, stderr };
}

function lines(text: string): string[] {
  return text.split("\n").filter((line) => line.trim() !== "");
}

function tableNames(databasePath: string): string[] {
  const db = new Database(databasePath, { readonly: true });
  try {
    return db
      .query<{ name: string }, []>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
      .all()
      .map((row) => row.name);
  } finally {
    db.close();
  }
}

/** The JSON log records on stderr (index.ts logs one object per line). */
function logRecords(stderr: string): { level: string; msg: string }[] {
  return lines(stderr).map((line) => JSON.parse(line));
}

describe("configuration errors", () => {
  test.each<[string, Record<string, string>, string[]]>([
    ["PORT not a number", { PORT: "abc" }, ["PORT"]],
    ["BACKEND_API_URL not http(s)", { BACKEND_API_URL: "ftp://x" }, ["BACKEND_API_URL"]],
    ["two bad variables", { PORT: "abc", PROXY_TIMEOUT_MS: "0" }, ["PORT", "PROXY_TIMEOUT_MS"]],
    ["production without BETTER_AUTH_SECRET", { NODE_ENV: "production" }, ["BETTER_AUTH_SECRET"]],
  ])(
    "%s: exit 1, one line per problem, no stack trace",
    async (_name, env, variables) => {
      const dir = freshDir();
      const databasePath = join(dir, "authgate.db");
      const run = await runCli(["migrate"], { NODE_ENV: "development", DATABASE_URL: databasePath, ...env });

      expect(run.code).toBe(1);
      const errorLines = lines(run.stderr);
      expect(errorLines).toHaveLength(variables.length);
      variables.forEach((variable, i) => expect(errorLines[i]).toStartWith(`authgate: ${variable} `));
      expect(run.stderr).not.toMatch(/^\s+at /m);
      expect(run.stderr).not.toContain("ConfigError");
      expect(run.stdout).toBe("");
      // Start-up stopped before the database was touched.
      expect(existsSync(databasePath)).toBe(false);
    },
    TIMEOUT_MS,
  );

  test(
    "an unknown command exits 1 and names it",
    async () => {
      const dir = freshDir();
      const run = await runCli(["serve"], { NODE_ENV: "development", DATABASE_URL: join(dir, "authgate.db") });
      expect(run.code).toBe(1);
      expect(lines(run.stderr)).toEqual(['authgate: unknown command "serve" (expected "start" or "migrate")']);
    },
    TIMEOUT_MS,
  );
});

describe("migrate", () => {
  test(
    "creates Better Auth's tables and is idempotent",
    async () => {
      const dir = freshDir();
      const databasePath = join(dir, "authgate.db");
      const env = { NODE_ENV: "development", DATABASE_URL: databasePath, BETTER_AUTH_SECRET: SECRET };

      const first = await runCli(["migrate"], env);
      expect(first.stderr).not.toContain('"level":"error"');
      expect(first.code).toBe(0);
      expect(existsSync(databasePath)).toBe(true);
      const tables = tableNames(databasePath);
      expect(tables).toEqual(expect.arrayContaining(AUTH_TABLES));
      expect(logRecords(first.stderr).map((record) => record.msg)).toContain("migrations applied");
      // A configured secret means no secret file is written.
      expect(existsSync(join(dir, ".authgate-secret"))).toBe(false);

      const second = await runCli(["migrate"], env);
      expect(second.stderr).not.toContain('"level":"error"');
      expect(second.code).toBe(0);
      expect(tableNames(databasePath)).toEqual(tables);
    },
    TIMEOUT_MS,
  );

  test(
    "prints nothing on stdout and no stack trace",
    async () => {
      const dir = freshDir();
      const run = await runCli(["migrate"], { NODE_ENV: "development", DATABASE_URL: join(dir, "authgate.db"), BETTER_AUTH_SECRET: SECRET });
      expect(run.code).toBe(0);
      expect(run.stdout).toBe("");
      expect(run.stderr).not.toMatch(/^\s+at /m);
      // stderr holds only the logger's JSON lines.
      expect(logRecords(run.stderr).map((record) => record.msg)).toEqual(["migrations applied"]);
    },
    TIMEOUT_MS,
  );

  test(
    "creates a missing database directory",
    async () => {
      const dir = freshDir();
      const databasePath = join(dir, "nested", "deeper", "authgate.db");
      const run = await runCli(["migrate"], { NODE_ENV: "development", DATABASE_URL: databasePath, BETTER_AUTH_SECRET: SECRET });
      expect(run.code).toBe(0);
      expect(tableNames(databasePath)).toEqual(expect.arrayContaining(AUTH_TABLES));
    },
    TIMEOUT_MS,
  );
});

describe("development secret", () => {
  test(
    "is generated beside the database with mode 0600 and reused on the next run",
    async () => {
      const dir = freshDir();
      const databasePath = join(dir, "authgate.db");
      const secretPath = join(dir, ".authgate-secret");
      const env = { NODE_ENV: "development", DATABASE_URL: databasePath };

      const first = await runCli(["migrate"], env);
      expect(first.code).toBe(0);
      expect(existsSync(secretPath)).toBe(true);
      expect(statSync(secretPath).mode & 0o777).toBe(0o600);
      const secret = readFileSync(secretPath, "utf8");
      expect(secret.trim().length).toBeGreaterThanOrEqual(32);
      const firstWarnings = logRecords(first.stderr).filter((record) => record.level === "warn");
      expect(firstWarnings).toHaveLength(1);
      expect(firstWarnings[0]!.msg).toStartWith(`BETTER_AUTH_SECRET is not set: generated one and kept it in ${secretPath}`);
      // The secret itself is never logged.
      expect(first.stderr).not.toContain(secret.trim());

      const second = await runCli(["migrate"], env);
      expect(second.code).toBe(0);
      expect(readFileSync(secretPath, "utf8")).toBe(secret);
      expect(statSync(secretPath).mode & 0o777).toBe(0o600);
      // Reused, not regenerated: the warning says which file it came from.
      expect(logRecords(second.stderr).filter((record) => record.level === "warn").map((record) => record.msg)).toEqual([
        `BETTER_AUTH_SECRET is not set: using the development secret kept in ${secretPath}`,
      ]);
    },
    TIMEOUT_MS,
  );
});
