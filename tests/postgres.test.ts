import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql } from "kysely";
import { openDatabase, type GatewayDatabase } from "../src/db";
import { startBackend, type TestBackend } from "./helpers/backend";
import { scratchPostgres } from "./helpers/fixture";
import { signUp } from "./helpers/gateway";
import { spawnGateway, type GatewayProcess } from "./helpers/process";

/** Set by .ci/run (PostgreSQL runs on the CI machine); without it these tests are skipped. */
const ADMIN_URL = process.env.TEST_POSTGRES_URL;
if (!ADMIN_URL) console.warn("TEST_POSTGRES_URL is not set: skipping the PostgreSQL multi-instance tests");

/** Both instances' public origin: the issuer and audience every backend checks. */
const PUBLIC_ORIGIN = "http://authgate.test";

describe.skipIf(!ADMIN_URL)("two gateway instances on one PostgreSQL", () => {
  let scratch: Awaited<ReturnType<typeof scratchPostgres>>;
  let databaseUrl: string;
  let db: GatewayDatabase;
  let backend: TestBackend;
  let a: GatewayProcess;
  let b: GatewayProcess;

  beforeAll(async () => {
    scratch = await scratchPostgres(ADMIN_URL!, "authgate_test");
    databaseUrl = scratch.url;
    db = openDatabase(databaseUrl, { poolSize: 2 });
    backend = startBackend();
    const env = { DATABASE_URL: databaseUrl, BACKEND_API_URL: backend.url, BETTER_AUTH_URL: PUBLIC_ORIGIN, SESSION_CACHE_SECONDS: "1" };
    // Both start at the same moment on an empty database.
    [a, b] = await Promise.all([spawnGateway(undefined, { env }), spawnGateway(undefined, { env })]);
  }, 30_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await backend?.stop();
    await db?.close();
    await scratch?.drop();
  });

  test("starting together on an empty database: no errors, one schema, one signing key", async () => {
    for (const instance of [a, b]) expect(instance.log()).not.toContain('"level":"error"');
    const tables = await sql<{ tablename: string }>`select tablename from pg_tables where schemaname = 'public' order by tablename`.execute(db.kysely);
    expect(tables.rows.map((r) => r.tablename)).toEqual(["account", "apikey", "jwks", "session", "user", "verification"]);
    const keys = await db.kysely.selectFrom("jwks").select("id").execute();
    expect(keys).toHaveLength(1);
    // Both publish the same JWKS.
    const [jwksA, jwksB] = await Promise.all([a, b].map(async (i) => (await fetch(i.url + "/api/auth/jwks")).json()));
    expect(jwksA).toEqual(jwksB);
  });

  test("signed up through A, proxied through B: the backend verifies both instances' JWTs against one JWKS", async () => {
    backend.trustGateway(a.url, PUBLIC_ORIGIN); // the backend knows one JWKS URL: A's
    const { cookie, user } = await signUp(a.url);
    for (const instance of [b, a]) {
      const before = backend.received.length;
      const response = await fetch(instance.url + "/api/shared", { headers: { cookie } });
      expect(response.status).toBe(200);
      const seen = backend.received[before]!;
      expect(seen.jwtError).toBeUndefined();
      expect(seen.claims?.sub).toBe(user.id);
      expect(seen.claims?.iss).toBe(PUBLIC_ORIGIN);
    }
  });

  test("signed out through A, B refuses the session within SESSION_CACHE_SECONDS", async () => {
    const { cookie } = await signUp(a.url);
    expect((await fetch(b.url + "/api/before", { headers: { cookie } })).status).toBe(200); // now cached on B
    // As a browser on the public origin sends it (Better Auth checks the origin of cookie-bearing POSTs).
    const signOut = await fetch(a.url + "/api/auth/sign-out", { method: "POST", headers: { cookie, origin: PUBLIC_ORIGIN } });
    expect(signOut.status).toBe(200);
    expect((await fetch(a.url + "/api/after", { headers: { cookie } })).status).toBe(401); // at once on A
    await Bun.sleep(1100); // the bound is time itself: B's cache entry lives at most 1 s
    expect((await fetch(b.url + "/api/after", { headers: { cookie } })).status).toBe(401);
  });

  test("a restarted instance picks up the same key and sessions", async () => {
    const { cookie, user } = await signUp(b.url);
    expect(await b.stop()).toBe(0);
    b = await spawnGateway(undefined, {
      env: { DATABASE_URL: databaseUrl, BACKEND_API_URL: backend.url, BETTER_AUTH_URL: PUBLIC_ORIGIN, SESSION_CACHE_SECONDS: "1" },
    });
    const before = backend.received.length;
    expect((await fetch(b.url + "/api/again", { headers: { cookie } })).status).toBe(200);
    expect(backend.received[before]!.claims?.sub).toBe(user.id);
    expect(await db.kysely.selectFrom("jwks").select("id").execute()).toHaveLength(1);
  });
});

describe.skipIf(!ADMIN_URL)("signing-key rotation across instances", () => {
  let scratch: Awaited<ReturnType<typeof scratchPostgres>>;
  let db: GatewayDatabase;
  let backend: TestBackend;
  let a: GatewayProcess;
  let b: GatewayProcess;

  beforeAll(async () => {
    scratch = await scratchPostgres(ADMIN_URL!, "authgate_rotation");
    db = openDatabase(scratch.url, { poolSize: 2 });
    backend = startBackend();
    // 0.00003 days ≈ 2.6 s: a rotation within the test; the new key signs 2 s after it is
    // published, and this backend refetches the JWKS at most every second (jose's default is
    // 30 s against the default 60 s delay).
    const env = {
      DATABASE_URL: scratch.url,
      BACKEND_API_URL: backend.url,
      BETTER_AUTH_URL: PUBLIC_ORIGIN,
      JWKS_ROTATION_DAYS: "0.00003",
      JWKS_PUBLISH_DELAY_SECONDS: "2",
    };
    [a, b] = await Promise.all([spawnGateway(undefined, { env }), spawnGateway(undefined, { env })]);
    backend.trustGateway(a.url, PUBLIC_ORIGIN, 1000);
  }, 30_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await backend?.stop();
    await db?.close();
    await scratch?.drop();
  });

  /** The `kid` a proxied request through `instance` was signed with (verified by the backend). */
  async function kidThrough(instance: GatewayProcess, cookie: string) {
    const before = backend.received.length;
    expect((await fetch(instance.url + "/api/kid", { headers: { cookie } })).status).toBe(200);
    const seen = backend.received[before]!;
    expect(seen.jwtError).toBeUndefined();
    return seen.protectedHeader!.kid!;
  }

  test("after the interval one new key is published, then both instances sign with it; the old one stays published", async () => {
    const first = await signUp(a.url);
    const oldKid = await kidThrough(a, first.cookie);
    expect(await kidThrough(b, first.cookie)).toBe(oldKid);

    const [{ expiresAt }] = await db.kysely.selectFrom("jwks").select("expiresAt").execute();
    await Bun.sleep(Math.max(0, new Date(expiresAt).getTime() - Date.now()) + 200); // rotation is a matter of time

    // Expired: the next token makes one instance mint the next key, which is published at once
    // but not yet used to sign.
    const second = await signUp(b.url); // a new session, so its JWT is minted now
    expect(await kidThrough(a, second.cookie)).toBe(oldKid);
    const rows = await db.kysely.selectFrom("jwks").select(["id", "createdAt"]).orderBy("createdAt", "desc").execute();
    expect(rows).toHaveLength(2); // no instance minted its own
    const newKid = rows[0]!.id as string;
    const published = ((await (await fetch(b.url + "/api/auth/jwks")).json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
    expect(published.sort()).toEqual([oldKid, newKid].sort());

    await Bun.sleep(Math.max(0, new Date(rows[0]!.createdAt).getTime() + 2000 - Date.now()) + 200); // past the publish delay
    const third = await signUp(a.url);
    const [kidA, kidB] = await Promise.all([kidThrough(a, third.cookie), kidThrough(b, third.cookie)]);
    expect(kidA).toBe(newKid);
    expect(kidB).toBe(newKid);
    expect(await db.kysely.selectFrom("jwks").select("id").execute()).toHaveLength(2);
    // A token signed with the old key before the rotation still verifies.
    expect(await kidThrough(a, first.cookie)).toBe(oldKid);
  }, 20_000);
});
