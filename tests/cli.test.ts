import { afterAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const REPO_ROOT = resolve(import.meta.dir, "..");
const ENTRY = join(REPO_ROOT, "src", "index.ts");
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
 * Runs `bun <repo>/src/index.ts ...args` with exactly `env` (plus PATH and HOME): nothing leaks
 * in from the test runner's environment, notably its NODE_ENV=test or a BETTER_AUTH_SECRET.
 * `cwd` is where Bun looks for `.env` files; `timeoutMs` kills a server that should not have
 * started (its exit code is then not 1).
 */
async function runCli(
  args: string[],
  env: Record<string, string>,
  { cwd = REPO_ROOT, timeoutMs }: { cwd?: string; timeoutMs?: number } = {},
): Promise<Run> {
  const proc = Bun.spawn([process.execPath, ENTRY, ...args], {
    cwd,
    timeout: timeoutMs,
    killSignal: "SIGKILL",
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
    ["production with a short BETTER_AUTH_SECRET", { NODE_ENV: "production", BETTER_AUTH_SECRET: "s".repeat(31) }, ["BETTER_AUTH_SECRET"]],
    [
      "production with an http BETTER_AUTH_URL off loopback",
      { NODE_ENV: "production", BETTER_AUTH_SECRET: SECRET, BETTER_AUTH_URL: "http://auth.example.com" },
      ["BETTER_AUTH_URL"],
    ],
    [
      "production with both",
      { NODE_ENV: "production", BETTER_AUTH_SECRET: "short", BETTER_AUTH_URL: "http://auth.example.com" },
      ["BETTER_AUTH_SECRET", "BETTER_AUTH_URL"],
    ],
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
      expect(lines(run.stderr)).toEqual([
        'authgate: unknown command "serve" (expected "start", "migrate", "check-config", "healthcheck", "user", "sessions", "apikey" or "keys"; see --help)',
      ]);
    },
    TIMEOUT_MS,
  );
});

describe("check-config", () => {
  test(
    "a valid table: exit 0, the resolved table on stdout, the database untouched",
    async () => {
      const dir = freshDir();
      mkdirSync(join(dir, "dist"));
      writeFileSync(
        join(dir, "authgate.toml"),
        '[[routes]]\nname = "api"\npath = "/api"\nupstream = "http://127.0.0.1:9/v1"\n\n[[routes]]\nname = "app"\npath = "/"\nstatic = "./dist"\nspa = true\nauth = "none"\n',
      );
      const databasePath = join(dir, "authgate.db");
      const run = await runCli(["check-config"], { CONFIG_FILE: join(dir, "authgate.toml"), DATABASE_URL: databasePath });
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
      const [api, app] = lines(run.stdout);
      expect(api).toMatch(/^\[0\] api\s+\/api\s+→ http:\/\/127\.0\.0\.1:9\/v1\s+auth = required$/);
      expect(app).toMatch(new RegExp(`^\\[1\\] app\\s+/\\s+→ static ${join(dir, "dist")} \\(spa\\)\\s+auth = none$`));
      expect(existsSync(databasePath)).toBe(false);
    },
    TIMEOUT_MS,
  );

  test(
    "without a file: the table the environment implies (BACKEND_API_URL, STATIC_DIR)",
    async () => {
      const dir = freshDir();
      mkdirSync(join(dir, "dist"));
      const run = await runCli(["check-config"], { BACKEND_API_URL: "http://127.0.0.1:9/v1", STATIC_DIR: "./dist" }, { cwd: dir });
      expect(run.code).toBe(0);
      const [api, app] = lines(run.stdout);
      expect(api).toMatch(/^\[0\] api\s+\/api\s+→ http:\/\/127\.0\.0\.1:9\/v1\s+auth = required$/);
      expect(app).toMatch(/^\[1\] app\s+\/\s+→ static \S+\/dist \(spa\)\s+auth = none$/);
    },
    TIMEOUT_MS,
  );

  test(
    "an invalid table: exit 1, every problem on its own line with the field's path, nothing on stdout",
    async () => {
      const dir = freshDir();
      writeFileSync(
        join(dir, "authgate.yaml"),
        "routes:\n  - name: api\n    path: /api\n    upstream: ftp://x\n    auth: requried\n  - name: api\n    path: /healthz\n    static: ./missing\n    strip_prefx: true\n",
      );
      const run = await runCli(["check-config"], { CONFIG_FILE: join(dir, "authgate.yaml"), PORT: "abc" });
      expect(run.code).toBe(1);
      expect(run.stdout).toBe("");
      expect(lines(run.stderr)).toEqual([
        'authgate: PORT must be a whole number from 0 to 65535, got "abc"',
        'authgate: routes[0].auth: must be "required", "optional" or "none", got "requried"',
        "authgate: routes[0].upstream: not an http(s) URL",
        'authgate: routes[1]: unknown key "strip_prefx"',
        'authgate: routes[1].name: "api" is also routes[0]\'s name',
        'authgate: routes[1].path: "/healthz" is reserved for the gateway',
        `authgate: routes[1].static: ${join(dir, "missing")} is not a directory`,
      ]);
    },
    TIMEOUT_MS,
  );
});

describe("a database that cannot be opened", () => {
  type Target = [label: string, make: (dir: string) => string, reason: string];
  const targets: Target[] = [
    // /proc refuses mkdir, even to root.
    ["a directory that cannot be created", () => "/proc/authgate-test/x.db", "ENOENT"],
    ["a directory where the file should be", (dir) => (mkdirSync(join(dir, "db.sqlite")), join(dir, "db.sqlite")), "SQLITE_CANTOPEN"],
    ["a file that is not SQLite", (dir) => (writeFileSync(join(dir, "db.sqlite"), "not a database\n".repeat(64)), join(dir, "db.sqlite")), "SQLITE_NOTADB"],
  ];
  const cases = ["migrate", "start"].flatMap((command) =>
    ["development", "production"].flatMap((nodeEnv) => targets.map(([label, make, reason]) => [command, nodeEnv, label, make, reason] as const)),
  );

  test.each(cases)(
    "%s, NODE_ENV=%s, %s: exit 1, one line naming DATABASE_URL, no stack trace",
    async (command, nodeEnv, _label, make, reason) => {
      const databasePath = make(freshDir());
      // PORT=0 on loopback: if the server did start, it would bind harmlessly until the timeout kills it.
      const run = await runCli(
        [command],
        { NODE_ENV: nodeEnv, DATABASE_URL: databasePath, BETTER_AUTH_SECRET: SECRET, PORT: "0", HOST: "127.0.0.1" },
        { timeoutMs: 20_000 },
      );

      expect(run.code).toBe(1);
      const errorLines = lines(run.stderr);
      expect(errorLines).toHaveLength(1);
      expect(errorLines[0]).toStartWith("authgate: DATABASE_URL: cannot open the database (");
      expect(errorLines[0]).toContain(reason);
      expect(errorLines[0]).toEndWith(")");
      expect(run.stderr).not.toMatch(/^\s+at /m);
      expect(run.stderr).not.toContain(SECRET);
      expect(run.stdout).toBe("");
    },
    TIMEOUT_MS,
  );

  test(
    "a file that is not SQLite is left as it was",
    async () => {
      const databasePath = join(freshDir(), "db.sqlite");
      const content = "not a database\n".repeat(64);
      writeFileSync(databasePath, content);
      const run = await runCli(["migrate"], { NODE_ENV: "development", DATABASE_URL: databasePath, BETTER_AUTH_SECRET: SECRET });
      expect(run.code).toBe(1);
      expect(readFileSync(databasePath, "utf8")).toBe(content);
    },
    TIMEOUT_MS,
  );
});

describe(".env files in the working directory", () => {
  test(
    "a bad PORT in .env stops start-up and is named",
    async () => {
      const dir = freshDir();
      writeFileSync(join(dir, ".env"), "PORT=abc\n");
      const databasePath = join(dir, "authgate.db");
      const run = await runCli(["migrate"], { NODE_ENV: "development", DATABASE_URL: databasePath, BETTER_AUTH_SECRET: SECRET }, { cwd: dir });

      expect(run.code).toBe(1);
      expect(lines(run.stderr)).toEqual(['authgate: PORT must be a whole number from 0 to 65535, got "abc"']);
      expect(existsSync(databasePath)).toBe(false);
    },
    TIMEOUT_MS,
  );

  test(
    "DATABASE_URL and BETTER_AUTH_SECRET from .env are used by migrate",
    async () => {
      const dir = freshDir();
      const databasePath = join(dir, "from-dotenv", "authgate.db");
      writeFileSync(join(dir, ".env"), `DATABASE_URL=${databasePath}\nBETTER_AUTH_SECRET=${SECRET}\n`);
      const run = await runCli(["migrate"], { NODE_ENV: "development" }, { cwd: dir });

      expect(run.stderr).not.toContain('"level":"error"');
      expect(run.code).toBe(0);
      expect(tableNames(databasePath)).toEqual(expect.arrayContaining(AUTH_TABLES));
      // Not the default ./data/authgate.db under the working directory...
      expect(existsSync(join(dir, "data"))).toBe(false);
      // ...and the secret came from .env too: none was generated beside the database.
      expect(existsSync(join(dir, "from-dotenv", ".authgate-secret"))).toBe(false);
    },
    TIMEOUT_MS,
  );

  test(
    ".env.production is read when NODE_ENV=production",
    async () => {
      const dir = freshDir();
      const databasePath = join(dir, "authgate.db");
      writeFileSync(join(dir, ".env"), `DATABASE_URL=${databasePath}\nBETTER_AUTH_SECRET=${SECRET}\n`);
      writeFileSync(join(dir, ".env.production"), "BETTER_AUTH_URL=http://auth.example.com\n");
      writeFileSync(join(dir, ".env.development"), "BETTER_AUTH_URL=http://dev.example.com\n");
      const run = await runCli(["migrate"], { NODE_ENV: "production" }, { cwd: dir });

      expect(run.code).toBe(1);
      expect(lines(run.stderr)).toHaveLength(1);
      expect(lines(run.stderr)[0]).toStartWith("authgate: BETTER_AUTH_URL must be an https:// URL");
      expect(run.stderr).toContain('"http://auth.example.com"');
      expect(existsSync(databasePath)).toBe(false);
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
