import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { decidePrune, KEY_POLL_SECONDS, PRUNE_MARGIN_SECONDS, type SigningKeyTimes } from "../src/cli/signing-keys";
import { parseFutureInstant, parseLifetime, parseRateLimit, parseRole, passwordFromStdin, UsageError } from "../src/cli/values";
import { startBackend, type TestBackend } from "./helpers/backend";
import { eventually } from "./helpers/feed";
import { scratchPostgres } from "./helpers/fixture";
import { openOperator } from "./helpers/operator";
import { cookieHeader, tempDir } from "./helpers/gateway";
import { ROOT, spawnGateway, type GatewayProcess } from "./helpers/process";

/**
 * The admin command line (`authgate user|sessions|apikey|keys …`) run as real processes
 * against the database of a running gateway process, on SQLite and on PostgreSQL (with Redis
 * when TEST_REDIS_URL is set). What the commands change reaches the gateway only through the
 * database (and Redis), within SESSION_CACHE_SECONDS (1 s here).
 */

const POSTGRES_URL = process.env.TEST_POSTGRES_URL;
const REDIS_URL = process.env.TEST_REDIS_URL;
if (!POSTGRES_URL) console.warn("TEST_POSTGRES_URL is not set: skipping the admin commands on PostgreSQL");
/** A high-entropy secret: a low-entropy one makes Better Auth warn on every run. */
const SECRET = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64url");
const PASSWORD = "correct horse battery";
/** For tests that spawn several commands and wait out a cache bound (Bun's default is 5 s). */
const SLOW = 20_000;
const CURL = Bun.which("curl");
const PYTHON = Bun.which("python3");

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the command line with exactly `env` (plus PATH and HOME) in an empty directory (no
 * .env is read). Every run is checked for what must never happen: a stack trace.
 */
async function run(command: string[], args: string[], env: Record<string, string>, { stdin, cwd }: { stdin?: string; cwd?: string } = {}): Promise<Run> {
  const proc = Bun.spawn([...command, ...args], {
    cwd: cwd ?? emptyDir.path,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", ...env },
    stdin: stdin === undefined ? "ignore" : new TextEncoder().encode(stdin),
    stdout: "pipe",
    stderr: "pipe",
    timeout: 20_000,
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  expect(stderr).not.toMatch(/^\s+at /m);
  expect(stderr).not.toContain("error: ");
  return { code, stdout, stderr };
}

const SOURCE = [process.execPath, join(ROOT, "src/index.ts")];
const emptyDir = tempDir();
afterAll(() => emptyDir.remove());


describe("flag values", () => {
  test.each<[string, () => unknown, unknown]>([
    ["30d", () => parseLifetime("--expires", "30d"), 30 * 86_400],
    ["12h", () => parseLifetime("--expires", "12h"), 12 * 3600],
    ["90m", () => parseLifetime("--expires", "90m"), 90 * 60],
    ["100/1m", () => parseRateLimit("--rate-limit", "100/1m"), { max: 100, windowMs: 60_000 }],
    ["10/30s", () => parseRateLimit("--rate-limit", "10/30s"), { max: 10, windowMs: 30_000 }],
    ["5/h (one hour)", () => parseRateLimit("--rate-limit", "5/h"), { max: 5, windowMs: 3_600_000 }],
    ["roles, trimmed", () => parseRole("admin, editor"), "admin,editor"],
    ["one trailing newline off", () => passwordFromStdin("secret\n\n"), "secret\n"],
    ["a CRLF off", () => passwordFromStdin("secret\r\n"), "secret"],
    ["spaces kept", () => passwordFromStdin(" secret "), " secret "],
    ["a date: midnight UTC", () => parseFutureInstant("--until", "2999-03-01", 0).toISOString(), "2999-03-01T00:00:00.000Z"],
    ["a time with an offset", () => parseFutureInstant("--until", "2999-03-01T12:00+02:00", 0).toISOString(), "2999-03-01T10:00:00.000Z"],
  ])("%s", (_name, parse, expected) => {
    expect(parse()).toEqual(expected);
  });

  test.each<[string, () => unknown]>([
    ["2w", () => parseLifetime("--expires", "2w")],
    ["30 (no unit)", () => parseLifetime("--expires", "30")],
    ["0d", () => parseLifetime("--expires", "0d")],
    ["-1h", () => parseLifetime("--expires", "-1h")],
    ["100 (no window)", () => parseRateLimit("--rate-limit", "100")],
    ["0/1m", () => parseRateLimit("--rate-limit", "0/1m")],
    ["100/1w", () => parseRateLimit("--rate-limit", "100/1w")],
    ["a role with a space", () => parseRole("super user")],
    ["an empty role", () => parseRole("admin,")],
    ["not a date", () => parseFutureInstant("--until", "tomorrow")],
    ["a date in the past", () => parseFutureInstant("--until", "2001-01-01")],
    ["no such day", () => parseFutureInstant("--until", "2999-02-30T25:00")],
  ])("refused: %s", (_name, parse) => {
    expect(parse).toThrow(UsageError);
  });
});

describe("which signing keys prune deletes", () => {
  const minute = 60_000;
  const now = Date.parse("2030-01-01T00:00:00Z");
  const key = (kid: string, minutesAgo: number): SigningKeyTimes => ({ kid, createdAt: new Date(now - minutesAgo * minute), expiresAt: null });
  const options = { publishDelaySeconds: 60, jwtLifetimeSeconds: 900, now };
  /** How long after its successor appeared a key may still verify tokens. */
  const boundMinutes = (60 + KEY_POLL_SECONDS + 900 + PRUNE_MARGIN_SECONDS) / 60;
  const decide = (keys: SigningKeyTimes[]) => {
    const { deleted, kept } = decidePrune(keys, options);
    return { deleted: deleted.map((k) => k.kid), kept: kept.map((k) => `${k.kid}:${k.reason}`) };
  };

  test.each<[string, SigningKeyTimes[], { deleted: string[]; kept: string[] }]>([
    ["the only key stays", [key("a", 10_000)], { deleted: [], kept: ["a:newest"] }],
    ["newest and current (the newest is younger than the publish delay)", [key("a", 10_000), key("b", 0.5)], { deleted: [], kept: ["a:current", "b:newest"] }],
    [
      "a key whose successor appeared longer ago than the bound goes; one whose successor is younger stays",
      [key("a", 10_000), key("b", boundMinutes + 1), key("c", boundMinutes - 1), key("d", 5)],
      { deleted: ["a"], kept: ["b:may still verify tokens", "c:may still verify tokens", "d:newest"] },
    ],
    ["old keys go, however many, but never the newest", [key("a", 10_000), key("b", 5000), key("c", 3000)], { deleted: ["a", "b"], kept: ["c:newest"] }],
  ])("%s", (_name, keys, expected) => {
    expect(decide(keys)).toEqual(expected);
  });
});

interface Suite {
  name: string;
  skip: boolean;
  /** DATABASE_URL (and REDIS_URL) for the gateway and the command line; the clean-up. */
  setUp(): Promise<{ env: Record<string, string>; cleanUp(): Promise<void> }>;
}

const suites: Suite[] = [
  {
    name: "SQLite",
    skip: false,
    async setUp() {
      const dir = tempDir();
      return { env: { DATABASE_URL: join(dir.path, "authgate.db") }, cleanUp: async () => dir.remove() };
    },
  },
  {
    name: REDIS_URL ? "PostgreSQL with Redis" : "PostgreSQL",
    skip: !POSTGRES_URL,
    async setUp() {
      const scratch = await scratchPostgres(POSTGRES_URL!, "authgate_admin_cli");
      return { env: { DATABASE_URL: scratch.url, ...(REDIS_URL && { REDIS_URL }) }, cleanUp: () => scratch.drop() };
    },
  },
];

for (const suite of suites) {
  describe.skipIf(suite.skip)(`the admin commands on ${suite.name}, beside a running gateway`, () => {
    let backend: TestBackend;
    let gw: GatewayProcess;
    let env: Record<string, string>;
    let cleanUp: () => Promise<void>;
    const extra: GatewayProcess[] = [];

    beforeAll(async () => {
      backend = startBackend();
      const setUp = await suite.setUp();
      cleanUp = setUp.cleanUp;
      const shared = { ...setUp.env, BETTER_AUTH_SECRET: SECRET, JWKS_PUBLISH_DELAY_SECONDS: "0" };
      gw = await spawnGateway(undefined, { env: { ...shared, BACKEND_API_URL: backend.url, SESSION_CACHE_SECONDS: "1" } });
      // jose refetches the JWKS for an unknown kid without waiting (a rotated key).
      backend.trustGateway(gw.url, gw.url, 0);
      // The command line sees what the gateway sees: same database, secret and public URL.
      env = { ...shared, BETTER_AUTH_URL: gw.url };
    }, 30_000);

    afterAll(async () => {
      for (const other of extra) await other.stop();
      await gw?.stop();
      await backend?.stop();
      await cleanUp?.();
    });

    const cli = (args: string[], options?: { stdin?: string; env?: Record<string, string> }) =>
      run(SOURCE, args, { ...env, ...options?.env }, options);
    /** Runs with --json: exit 0, and stdout is one JSON document and nothing else. */
    async function json<T = any>(args: string[], options?: { stdin?: string; env?: Record<string, string> }): Promise<T> {
      const result = await cli([...args, "--json"], options);
      if (result.code !== 0) throw new Error(`authgate ${args.join(" ")} exited ${result.code}: ${result.stderr}`);
      return JSON.parse(result.stdout) as T;
    }
    const email = () => `admin-cli-${crypto.randomUUID()}@example.test`;

    async function addUser(address = email(), role?: string) {
      return json(["user", "add", "--email", address, "--name", "Ann Example", ...(role ? ["--role", role] : []), "--password-stdin"], { stdin: `${PASSWORD}\n` });
    }
    async function signIn(address: string, password = PASSWORD) {
      const response = await fetch(`${gw.url}/api/auth/sign-in/email`, {
        method: "POST",
        headers: { "content-type": "application/json", origin: gw.url },
        body: JSON.stringify({ email: address, password }),
      });
      await response.arrayBuffer();
      return { status: response.status, cookie: cookieHeader(response) };
    }
    /** What the backend learnt of the caller from the gateway's JWT. */
    async function whoami(headers: Record<string, string>) {
      const response = await fetch(`${gw.url}/api/whoami`, { headers });
      const body = response.status === 200 ? ((await response.json()) as { claims: Record<string, unknown> | null; jwtError: string | null }) : undefined;
      if (!body) await response.arrayBuffer();
      return { status: response.status, claims: body?.claims ?? null, jwtError: body?.jwtError ?? null };
    }

    test("user add --password-stdin, then signing in through the gateway works; the JWT names the user and role", async () => {
      const address = email();
      const user = await addUser(address.toUpperCase(), "editor");
      expect(user).toMatchObject({ email: address, name: "Ann Example", role: "editor", banned: false, hasPassword: true, resetLink: null });
      expect(typeof user.id).toBe("string");
      const { status, cookie } = await signIn(address);
      expect(status).toBe(200);
      const seen = await whoami({ cookie });
      expect(seen.status).toBe(200);
      expect(seen.claims).toMatchObject({ sub: user.id, email: address, role: "editor", auth_method: "session" });
      // A user that exists already: exit 1, nothing on stdout.
      const again = await cli(["user", "add", "--email", address, "--name", "Twice"]);
      expect(again.code).toBe(1);
      expect(again.stdout).toBe("");
      expect(again.stderr).toMatch(/^authgate: .*already exists/m);
    }, SLOW);

    test("user add without a password prints a reset link; following it sets the password (a credential account is created)", async () => {
      const address = email();
      const human = await cli(["user", "add", "--email", address, "--name", "No Password"]);
      expect(human.code).toBe(0);
      const link = /^(http\S+\/auth\/reset-password\?token=(\S+))$/m.exec(human.stdout);
      expect(link?.[1]).toStartWith(`${gw.url}/auth/reset-password?token=`);
      // Nothing can sign in yet.
      expect((await signIn(address, "whatever it is")).status).toBe(401);

      const reset = await fetch(`${gw.url}/api/auth/reset-password`, {
        method: "POST",
        headers: { "content-type": "application/json", origin: gw.url },
        body: JSON.stringify({ token: decodeURIComponent(link![2]!), newPassword: "a brand new password" }),
      });
      expect(reset.status).toBe(200);
      expect((await signIn(address, "a brand new password")).status).toBe(200);
      const shown = await json(["user", "show", address]);
      expect(shown.signInMethods).toEqual(["credential"]);
    }, SLOW);

    test("user list and user show: --json shapes; an unknown user is exit 1", async () => {
      const user = await addUser();
      const [list, shown, missing] = await Promise.all([json<any[]>(["user", "list"]), json(["user", "show", user.email]), cli(["user", "show", "nobody@example.test"])]);
      const listed = list.find((entry) => entry.id === user.id);
      expect(Object.keys(listed).sort()).toEqual(["banExpires", "banReason", "banned", "createdAt", "email", "emailVerified", "id", "name", "role", "updatedAt"]);
      expect(listed).toMatchObject({ email: user.email, role: "user", banned: false });
      expect(shown).toMatchObject({ id: user.id, email: user.email, role: "user", signInMethods: ["credential"], activeSessions: 0, apiKeys: 0 });
      expect(missing.code).toBe(1);
      expect(missing.stdout).toBe("");
      expect(missing.stderr.trim().split("\n").at(-1)).toBe("authgate: no user with e-mail nobody@example.test");
    }, SLOW);

    test("user set-role: the JWT's role claim changes within SESSION_CACHE_SECONDS", async () => {
      const user = await addUser();
      const { cookie } = await signIn(user.email);
      expect((await whoami({ cookie })).claims?.role).toBe("user");
      const changed = await json(["user", "set-role", user.email, "admin"]);
      expect(changed).toMatchObject({ role: "admin", previousRole: "user" });
      await eventually(async () => (await whoami({ cookie })).claims?.role === "admin", "the new role in the JWT");
    }, SLOW);

    test("user ban: the session gets 401 and sign-in is refused; unban lets the user in again", async () => {
      const user = await addUser();
      const { cookie } = await signIn(user.email);
      expect((await whoami({ cookie })).status).toBe(200);
      const banned = await json(["user", "ban", user.email, "--reason", "spam", "--until", "2999-01-01T00:00:00Z"]);
      expect(banned).toMatchObject({ banned: true, banReason: "spam", banExpires: "2999-01-01T00:00:00.000Z", sessionsRevoked: 1 });
      await eventually(async () => (await whoami({ cookie })).status === 401, "the banned user's session refused");
      expect((await signIn(user.email)).status).toBe(403);

      expect(await json(["user", "unban", user.email])).toMatchObject({ banned: false, banReason: null, banExpires: null });
      const again = await signIn(user.email);
      expect(again.status).toBe(200);
      expect((await whoami({ cookie: again.cookie })).status).toBe(200);
    }, SLOW);

    test("sessions list, revoke --session (that one only) and revoke --all", async () => {
      const user = await addUser();
      const [first, second] = await Promise.all([signIn(user.email), signIn(user.email)]);
      const sessions = await json<any[]>(["sessions", "list", user.email]);
      expect(sessions).toHaveLength(2);
      expect(Object.keys(sessions[0]).sort()).toEqual(["createdAt", "expiresAt", "id", "ipAddress", "updatedAt", "userAgent"]);
      // Which is which: the JWT's sid claim.
      const firstSid = (await whoami({ cookie: first.cookie })).claims?.sid;
      expect(sessions.map((s) => s.id)).toContain(firstSid);

      expect(await json(["sessions", "revoke", user.email, "--session", String(firstSid)])).toEqual({ revoked: [firstSid] });
      const [, gone] = await Promise.all([
        eventually(async () => (await whoami({ cookie: first.cookie })).status === 401, "the revoked session refused"),
        cli(["sessions", "revoke", user.email, "--session", String(firstSid)]),
      ]);
      expect(gone.code).toBe(1);
      expect((await whoami({ cookie: second.cookie })).status).toBe(200);

      const all = await json(["sessions", "revoke", user.email, "--all"]);
      expect(all.revoked).toHaveLength(1);
      await eventually(async () => (await whoami({ cookie: second.cookie })).status === 401, "every session refused");
      expect(await json(["sessions", "list", user.email])).toEqual([]);
    }, SLOW);

    test.skipIf(!CURL || !PYTHON)("apikey create: the key works from curl (Bearer) and Python (X-Api-Key); revoke stops it", async () => {
      const user = await addUser(undefined, "service");
      const created = await json(["apikey", "create", "--user", user.email, "--name", "ci"]);
      expect(created.key).toStartWith("authgate_");
      expect(created).toMatchObject({ name: "ci", userId: user.id, email: user.email, expiresAt: null, rateLimit: null, enabled: true });
      expect(created.start).toBe(created.key.slice(0, created.start.length));

      // Asynchronous spawns: the backend answering them runs in this process.
      const python = "import sys, urllib.request\nrequest = urllib.request.Request(sys.argv[1], headers={'X-Api-Key': sys.argv[2]})\nprint(urllib.request.urlopen(request).read().decode())";
      const [viaCurl, viaPython] = await Promise.all([
        outputOf([CURL!, "-sS", "--fail", "-H", `Authorization: Bearer ${created.key}`, `${gw.url}/api/whoami`]),
        outputOf([PYTHON!, "-c", python, `${gw.url}/api/whoami`, created.key]),
      ]);
      for (const output of [viaCurl, viaPython]) {
        const { claims, jwtError } = JSON.parse(output);
        expect(jwtError).toBeNull();
        expect(claims).toMatchObject({ sub: user.id, email: user.email, role: "service", auth_method: "api_key", key_id: created.id });
      }

      // Listed with its first characters and owner, never the key or its hash.
      const listed = await cli(["apikey", "list", "--user", user.email, "--json"]);
      expect(listed.stdout).not.toContain(created.key);
      const [entry] = JSON.parse(listed.stdout);
      expect(entry).toMatchObject({ id: created.id, name: "ci", email: user.email, start: created.start, enabled: true, rateLimit: null });
      expect(Object.keys(entry)).not.toContain("key");

      expect(await json(["apikey", "revoke", created.id])).toMatchObject({ id: created.id, revoked: true });
      await eventually(async () => (await whoami({ "x-api-key": created.key })).status === 401, "the revoked key refused");
      const again = await cli(["apikey", "revoke", created.id]);
      expect(again.code).toBe(1);
      expect(again.stderr).toContain(`no API key with id ${created.id}`);
    }, SLOW);

    test("apikey create --expires and --rate-limit: the expiry is stored, the limit is enforced by the gateway", async () => {
      const user = await addUser();
      const before = Date.now();
      const created = await json(["apikey", "create", "--user", user.email, "--name", "short", "--expires", "90m", "--rate-limit", "2/1m"]);
      const expiresAt = Date.parse(created.expiresAt);
      expect(expiresAt).toBeGreaterThanOrEqual(before + 90 * 60_000 - 1000);
      expect(expiresAt).toBeLessThanOrEqual(Date.now() + 90 * 60_000 + 1000);
      expect(created.rateLimit).toEqual({ max: 2, windowMs: 60_000 });
      const statuses = [];
      for (let i = 0; i < 3; i++) statuses.push((await whoami({ authorization: `Bearer ${created.key}` })).status);
      expect(statuses).toEqual([200, 200, 429]);

      const human = await cli(["apikey", "create", "--user", user.email, "--name", "day", "--expires", "30d"]);
      expect(human.code).toBe(0);
      // The key alone on stdout (`KEY=$(authgate apikey create …)`), the rest on stderr.
      expect(human.stdout).toMatch(/^authgate_[A-Za-z0-9]+\n$/);
      expect(human.stderr).toContain("shown only this once");
    }, SLOW);

    test("user delete: the user's sessions and API keys stop working", async () => {
      const user = await addUser();
      const [{ cookie }, { key }] = await Promise.all([signIn(user.email), json(["apikey", "create", "--user", user.email, "--name", "doomed"])]);
      expect((await whoami({ "x-api-key": key })).status).toBe(200);
      expect(await json(["user", "delete", user.email])).toMatchObject({ id: user.id, deleted: true, sessionsRevoked: 1, apiKeysDeleted: 1 });
      const [, , shown, keys] = await Promise.all([
        eventually(async () => (await whoami({ "x-api-key": key })).status === 401, "the deleted user's key refused"),
        eventually(async () => (await whoami({ cookie })).status === 401, "the deleted user's session refused"),
        cli(["user", "show", user.email]),
        json<any[]>(["apikey", "list"]),
      ]);
      expect(shown.code).toBe(1);
      expect(keys).not.toContainEqual(expect.objectContaining({ userId: user.id }));
    }, SLOW);

    test(
      "keys list, rotate (the new key is published beside the old one, a newly started instance signs with it) and prune",
      async () => {
        // The key the gateway minted at start-up.
        const before = await json<any[]>(["keys", "list"]);
        expect(before).toHaveLength(1);
        for (const key of before) expect(Object.keys(key).sort()).toEqual(["createdAt", "current", "expiresAt", "kid"]);
        expect(before[0].current).toBe(true);
        const old = before[0].kid;

        // Another secret could not decrypt the keys, nor would instances decrypt its key: refused.
        const otherSecret = await cli(["keys", "rotate"], { env: { BETTER_AUTH_SECRET: `${SECRET}-not-the-same` } });
        expect(otherSecret.code).toBe(1);
        expect(otherSecret.stderr).toContain("another BETTER_AUTH_SECRET");

        const rotation = await json(["keys", "rotate"]);
        expect(rotation.kid).not.toBe(old);
        expect(rotation.expired).toContain(old);
        const after = await json<any[]>(["keys", "list"]);
        expect(after.at(-1)).toMatchObject({ kid: rotation.kid, expiresAt: null, current: true });
        const published = async () => ((await (await fetch(`${gw.url}/api/auth/jwks`)).json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
        expect(await published()).toEqual(expect.arrayContaining([old, rotation.kid]));

        // An instance started now signs with the new key (the running one switches within a minute).
        const fresh = await spawnGateway(undefined, { env: { ...env, BACKEND_API_URL: backend.url } });
        extra.push(fresh);
        const user = await addUser();
        const { cookie } = await signIn(user.email);
        const response = await fetch(`${fresh.url}/api/whoami`, { headers: { cookie } });
        expect(((await response.json()) as { jwtError: string | null }).jwtError).toBeNull();
        expect(backend.received.at(-1)?.protectedHeader?.kid).toBe(rotation.kid);

        // A second rotation, then the first two keys' creation moved into the past (as if days
        // had gone by): prune deletes the first (its successor appeared long ago) and keeps the
        // second (its successor is new) and the newest. The running gateway still caches the
        // first key, which it would have dropped in those days, so this comes last.
        const third = await json(["keys", "rotate"]);
        expect((await json<any[]>(["keys", "list"])).map((key) => key.kid)).toEqual([old, rotation.kid, third.kid]);
        const daysAgo = (days: number) => new Date(Date.now() - days * 86_400_000);
        await backdate(env.DATABASE_URL!, [
          [old, daysAgo(3)],
          [rotation.kid, daysAgo(2)],
        ]);
        const pruned = await json(["keys", "prune"]);
        expect(pruned.deleted.map((key: { kid: string }) => key.kid)).toEqual([old]);
        expect(pruned.kept.map((key: { kid: string; reason: string }) => `${key.kid}:${key.reason}`)).toEqual([
          `${rotation.kid}:may still verify tokens`,
          `${third.kid}:newest`,
        ]);
        expect((await json<any[]>(["keys", "list"])).map((key) => key.kid)).toEqual([rotation.kid, third.kid]);
        expect((await published()).sort()).toEqual([rotation.kid, third.kid].sort());
        // Pruning again deletes nothing: the newest key is never deleted.
        expect((await json(["keys", "prune"])).deleted).toEqual([]);
      },
      30_000,
    );
  });
}

/** What a program printed; it must exit 0 and print nothing on stderr. */
async function outputOf(command: string[]): Promise<string> {
  const proc = Bun.spawn(command, { stdout: "pipe", stderr: "pipe", timeout: 10_000 });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
  return stdout;
}

/** Moves signing keys' creation into the past, through Better Auth's adapter (what time passing would have done). */
async function backdate(databaseUrl: string, changes: readonly (readonly [string, Date])[]) {
  const operator = await openOperator(databaseUrl, { secret: SECRET });
  try {
    for (const [kid, createdAt] of changes) await operator.context.adapter.update({ model: "jwks", where: [{ field: "id", value: kid }], update: { createdAt } });
  } finally {
    await operator.close();
  }
}

describe("usage errors and help (nothing is opened)", () => {
  const dir = tempDir();
  afterAll(() => dir.remove());
  const env = () => ({ DATABASE_URL: join(dir.path, "authgate.db"), BETTER_AUTH_SECRET: SECRET });

  test.each<[string, string[], RegExp, string]>([
    ["an unknown subcommand", ["user", "frob"], /^authgate user: unknown subcommand "frob" \(expected add, list, show, /, "see: authgate user --help"],
    ["no subcommand", ["apikey"], /^authgate apikey: a subcommand is needed/, "see: authgate apikey --help"],
    ["an unknown flag", ["user", "list", "--colour"], /^authgate user list: unknown option --colour$/, "usage: authgate user list"],
    ["a missing flag", ["user", "add", "--email", "a@example.test"], /^authgate user add: --name is required$/, "usage: authgate user add --email E --name N [--role R] [--password-stdin]"],
    ["a flag without its value", ["apikey", "create", "--user"], /^authgate apikey create: --user needs a value$/, "usage: authgate apikey create"],
    ["a missing argument", ["user", "set-role", "a@example.test"], /^authgate user set-role: missing R$/, "usage: authgate user set-role E R"],
    ["one argument too many", ["user", "show", "a@example.test", "b@example.test"], /unexpected argument "b@example.test"/, "usage: authgate user show E"],
    ["--expires in weeks", ["apikey", "create", "--user", "a@example.test", "--name", "n", "--expires", "2w"], /--expires must be a number of days, hours or minutes/, "usage: authgate apikey create"],
    ["--until not a date", ["user", "ban", "a@example.test", "--until", "soon"], /--until must be an ISO date/, "usage: authgate user ban"],
    ["revoke without --all or --session", ["sessions", "revoke", "a@example.test"], /say which: --all, or --session ID/, "usage: authgate sessions revoke"],
    ["--json with a value", ["keys", "list", "--json=yes"], /--json takes no value/, "usage: authgate keys list"],
  ])("%s: exit 2, the problem and the right usage on stderr", async (_name, args, problem, hint) => {
    const result = await run(SOURCE, args, env());
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    const [first, second, ...more] = result.stderr.trim().split("\n");
    expect(first).toMatch(problem);
    expect(second).toStartWith(hint);
    expect(more).toEqual([]);
  });

  test("usage errors come before the configuration and the database", async () => {
    const result = await run(SOURCE, ["user", "list", "--colour"], { PORT: "abc", DATABASE_URL: "/proc/nowhere/x.db" });
    expect(result.code).toBe(2);
  });

  test("--help lists the admin commands; `authgate user --help` explains them", async () => {
    const help = await run(SOURCE, ["--help"], {});
    expect(help.code).toBe(0);
    for (const usage of ["user add --email E", "sessions revoke E", "apikey create --user E", "keys prune"]) expect(help.stdout).toContain(`authgate ${usage}`);
    const user = await run(SOURCE, ["user", "--help"], {});
    expect(user.code).toBe(0);
    expect(user.stdout).toContain("authgate user ban E [--reason T] [--until DATE]");
    expect(user.stdout).toContain("Exit codes: 0 done, 1 failed, 2 usage error");
  });

  test("a database that cannot be reached: exit 1, one line naming DATABASE_URL", async () => {
    const result = await run(SOURCE, ["user", "list"], { DATABASE_URL: "postgres://nobody@127.0.0.1:1/none", BETTER_AUTH_SECRET: SECRET });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr.trim()).toStartWith("authgate: DATABASE_URL: cannot open the database (ECONNREFUSED");
  });

  test("in production without e-mail delivery, user add without a password says how the user can get in", async () => {
    const result = await run(SOURCE, ["user", "add", "--email", "nomail@example.test", "--name", "N", "--json"], {
      ...env(),
      NODE_ENV: "production",
      BETTER_AUTH_URL: "http://127.0.0.1:9",
    });
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ email: "nomail@example.test", hasPassword: false, resetLink: null });
    expect(result.stderr).toContain("can sign in only through an identity provider");
    expect(result.stderr).toContain("authgate user set-password nomail@example.test --password-stdin");
  });
});

describe("the compiled binary", () => {
  let binary: string;
  const dirs = [tempDir(), tempDir()];
  afterAll(() => dirs.forEach((dir) => dir.remove()));

  beforeAll(async () => {
    // package.json's build script, with the output in a temporary directory.
    const script: string = (await Bun.file(join(ROOT, "package.json")).json()).scripts.build;
    binary = join(dirs[0]!.path, "authgate");
    const args = script.replace(/^bun /, "").replace(/--outfile \S+/, `--outfile ${binary}`).split(" ");
    const build = Bun.spawn([process.execPath, ...args], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    if ((await build.exited) !== 0) throw new Error(await new Response(build.stderr).text());
  }, 60_000);

  test("user add, apikey create and keys list on a fresh database; the key works through a gateway", async () => {
    const backend = startBackend();
    const env = { DATABASE_URL: join(dirs[1]!.path, "authgate.db"), BETTER_AUTH_SECRET: SECRET };
    try {
      const add = await run([binary], ["user", "add", "--email", "bin@example.test", "--name", "Bin", "--password-stdin", "--json"], env, { stdin: PASSWORD });
      expect(add.code).toBe(0);
      expect(add.stderr).toContain("creating or updating the database schema");
      const user = JSON.parse(add.stdout);
      const created = await run([binary], ["apikey", "create", "--user", "bin@example.test", "--name", "bin", "--json"], env);
      const key = JSON.parse(created.stdout);
      expect(key).toMatchObject({ userId: user.id, expiresAt: null });
      const keys = JSON.parse((await run([binary], ["keys", "list", "--json"], env)).stdout);
      expect(keys).toEqual([{ kid: expect.any(String), createdAt: expect.any(String), expiresAt: null, current: true }]);

      const gw = await spawnGateway(undefined, { env: { ...env, BACKEND_API_URL: backend.url } });
      try {
        backend.trustGateway(gw.url, gw.url);
        const response = await fetch(`${gw.url}/api/whoami`, { headers: { "x-api-key": key.key } });
        const { claims } = (await response.json()) as { claims: Record<string, unknown> };
        expect(claims).toMatchObject({ sub: user.id, auth_method: "api_key", key_id: key.id });
        expect(backend.received.at(-1)?.protectedHeader?.kid).toBe(keys[0].kid);
      } finally {
        await gw.stop();
      }
    } finally {
      await backend.stop();
    }
  }, SLOW);
});
