import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { decodeJwt } from "jose";
import { startBackend, type TestBackend } from "./helpers/backend";
import { eventually } from "./helpers/feed";
import { signUp, startGateway, tempDir, type RunningGateway } from "./helpers/gateway";
import { operatorOn, type Operator } from "./helpers/operator";

/**
 * API keys, native apps' bearer session tokens, roles and bans, end to end: a real gateway on a
 * SQLite file, Better Auth's plugins, and a backend that verifies every JWT with jose. What an
 * operator changes in the database (another instance, the command line) comes through
 * `operator`, which opens the same file.
 */

let backend: TestBackend;
let dir: ReturnType<typeof tempDir>;
let gw: RunningGateway;
let operator: Operator;

beforeAll(async () => {
  backend = startBackend();
  dir = tempDir();
  const file = join(dir.path, "authgate.toml");
  writeFileSync(
    file,
    `
[[routes]]
name = "api"
path = "/api"
upstream = "${backend.url}"

[[routes]]
name = "admin"
path = "/api/admin"
upstream = "${backend.url}"
allow = { roles = ["admin"] }

[[routes]]
name = "maybe"
path = "/api/maybe"
upstream = "${backend.url}"
auth = "optional"

[[routes]]
name = "browser-only"
path = "/api/browser"
upstream = "${backend.url}"
allow = { api_keys = false }
`,
  );
  // A one-second cache: what another instance (or the command line) changes shows within it.
  gw = await startGateway({ CONFIG_FILE: file, SESSION_CACHE_SECONDS: "1" }, dir.path);
  backend.trustGateway(gw.url, gw.url);
  operator = await operatorOn(gw, join(dir.path, "authgate.db"));
}, 30_000);

afterAll(async () => {
  await operator?.close();
  await gw?.stop();
  await backend?.stop();
  dir?.remove();
});

/** A GET through the gateway; what the client got, and what the backend saw of it (if anything). */
async function call(path: string, headers: Record<string, string>, init: RequestInit = {}) {
  const target = `${path}${path.includes("?") ? "&" : "?"}call=${crypto.randomUUID()}`;
  const response = await fetch(gw.url + target, { ...init, headers });
  const body = await response.text();
  const seen = backend.received.find((r) => r.target === target);
  return { status: response.status, body, headers: response.headers, seen, claims: seen?.claims };
}

async function queriesDuring(action: () => Promise<unknown>) {
  const before = gw.gateway.auth.queryCount;
  await action();
  return gw.gateway.auth.queryCount - before;
}


describe("API keys", () => {
  let user: { id: string; email: string };
  let cookie: string;
  let key: { id: string; key: string };

  beforeAll(async () => {
    ({ user, cookie } = await signUp(gw.url));
    key = await operator.createKey(user.id);
  });

  test("keys carry the recognisable prefix", () => {
    expect(key.key).toMatch(/^authgate_[A-Za-z0-9]{48}$/);
  });

  test.each([
    ["Authorization: Bearer", (k: string) => ({ authorization: `Bearer ${k}` })],
    ["X-Api-Key", (k: string) => ({ "x-api-key": k })],
  ])("%s: the backend gets a JWT for the key's owner, never the key", async (_name, headers) => {
    const { status, seen, claims } = await call("/api/data", headers(key.key));
    expect(status).toBe(200);
    expect(claims).toMatchObject({ sub: user.id, email: user.email, role: "user", auth_method: "api_key", key_id: key.id });
    expect(claims!.sid).toBeUndefined();
    expect(seen!.headers.get("x-api-key")).toBeNull();
    const forwarded = [...seen!.headers].map(([, value]) => value).join("\n");
    expect(forwarded).not.toContain(key.key);
  });

  test("a validated key is cached like a session: repeated calls run no SQL", async () => {
    expect((await call("/api/data", { "x-api-key": key.key })).status).toBe(200);
    expect(await queriesDuring(async () => {
      for (let i = 0; i < 10; i++) expect((await call("/api/data", { "x-api-key": key.key })).status).toBe(200);
    })).toBe(0);
  });

  test("an unknown key is 401 with a readable error, and is looked up each time (never cached)", async () => {
    const forged = `authgate_${"x".repeat(48)}`;
    const first = await call("/api/data", { "x-api-key": forged });
    expect(first.status).toBe(401);
    expect(JSON.parse(first.body)).toEqual({ error: "Invalid API key" });
    expect(first.seen).toBeUndefined();
    expect(await queriesDuring(() => call("/api/data", { "x-api-key": forged }))).toBeGreaterThan(0);
  });

  test("on an optional route a good key gets a JWT, a bad one is refused rather than forwarded as anonymous", async () => {
    expect((await call("/api/maybe/x", { "x-api-key": key.key })).claims).toMatchObject({ sub: user.id, auth_method: "api_key" });
    const bad = await call("/api/maybe/x", { "x-api-key": `authgate_${"z".repeat(48)}` });
    expect(bad.status).toBe(401);
    expect(bad.seen).toBeUndefined();
  });

  test("a key sent as the session cookie never finds the key's cache entry (nor the other way round)", async () => {
    // The key is cached now (a request on a route that takes keys).
    expect((await call("/api/data", { "x-api-key": key.key })).status).toBe(200);
    // As the session cookie, on a route that refuses keys: not a session.
    const asCookie = await call("/api/browser/x", { cookie: `better-auth.session_token=${key.key}` });
    expect(asCookie.status).toBe(401);
    expect(asCookie.seen).toBeUndefined();
    // A session token sent as a key is no key, however recently the session was used.
    const session = await signUp(gw.url);
    expect((await call("/api/data", { cookie: session.cookie })).status).toBe(200);
    const token = decodeURIComponent(session.cookie.match(/better-auth\.session_token=([^;]+)/)![1]!);
    const asKey = await call("/api/data", { "x-api-key": token });
    expect(asKey.status).toBe(401);
    expect(JSON.parse(asKey.body)).toEqual({ error: "Invalid API key" });
  });

  test("a key without the prefix is refused without a lookup", async () => {
    expect(await queriesDuring(async () => expect((await call("/api/data", { "x-api-key": "not-one-of-ours" })).status).toBe(401))).toBe(0);
  });

  test("two different keys in one request → 400", async () => {
    const other = await operator.createKey(user.id);
    const { status, body, seen } = await call("/api/data", { authorization: `Bearer ${key.key}`, "x-api-key": other.key });
    expect(status).toBe(400);
    expect(JSON.parse(body).error).toMatch(/two different API keys/i);
    expect(seen).toBeUndefined();
  });

  test("a key and a browser session: the key wins where the route takes keys", async () => {
    const other = await signUp(gw.url);
    const { claims } = await call("/api/data", { cookie: other.cookie, "x-api-key": key.key });
    expect(claims).toMatchObject({ sub: user.id, auth_method: "api_key" });
  });

  test("allow.api_keys = false: a key alone is 403, with a session the session is used", async () => {
    const alone = await call("/api/browser/x", { "x-api-key": key.key });
    expect(alone.status).toBe(403);
    expect(JSON.parse(alone.body)).toEqual({ error: "This route does not accept API keys" });
    expect(alone.seen).toBeUndefined();
    const other = await signUp(gw.url);
    const both = await call("/api/browser/x", { cookie: other.cookie, "x-api-key": key.key });
    expect(both.status).toBe(200);
    expect(both.claims).toMatchObject({ sub: other.user.id, auth_method: "session" });
  });

  test.each(["api_key", "apikey", "key", "token"])("a key in the query string (?%s=) is refused with 400 and not forwarded", async (name) => {
    const { status, body, seen } = await call(`/api/data?${name}=${key.key}`, {});
    expect(status).toBe(400);
    expect(JSON.parse(body).error).toMatch(/header/);
    expect(seen).toBeUndefined();
    // Not in the log either.
    expect(gw.logLines.join("\n")).not.toContain(key.key);
  });

  test("an unsafe request with a key from a foreign Origin passes (no cookie to ride on); with the cookie it is refused", async () => {
    const withKey = await call("/api/data", { "x-api-key": key.key, origin: "https://evil.example", "content-type": "application/json" }, { method: "POST", body: "{}" });
    expect(withKey.status).toBe(200);
    expect(withKey.claims).toMatchObject({ auth_method: "api_key" });
    const withCookie = await call("/api/data", { cookie, origin: "https://evil.example", "content-type": "application/json" }, { method: "POST", body: "{}" });
    expect(withCookie.status).toBe(403);
    // A key on a route that refuses keys does not lift the check for the cookie it falls back to.
    const fallback = await call("/api/browser/x", { cookie, "x-api-key": key.key, origin: "https://evil.example" }, { method: "POST", body: "{}" });
    expect(fallback.status).toBe(403);
    // Nor does a key sent with cookies (any cookie: the upstream would get them): checked too.
    const keyWithCookies = await call("/api/data", { cookie: "theme=dark", "x-api-key": key.key, origin: "https://evil.example" }, { method: "POST", body: "{}" });
    expect(keyWithCookies.status).toBe(403);
    expect(keyWithCookies.seen).toBeUndefined();
  });

  test("revoked through this instance: refused on the very next request", async () => {
    const doomed = await operator.createKey(user.id);
    expect((await call("/api/data", { "x-api-key": doomed.key })).status).toBe(200);
    expect((await call("/api/data", { "x-api-key": doomed.key })).status).toBe(200); // cached now
    const revoke = await fetch(gw.url + "/api/auth/api-key/delete", {
      method: "POST",
      headers: { cookie, origin: gw.url, "content-type": "application/json" },
      body: JSON.stringify({ keyId: doomed.id }),
    });
    expect(revoke.status).toBe(200);
    expect((await call("/api/data", { "x-api-key": doomed.key })).status).toBe(401);
  });

  test("revoked in the database (another instance, the command line): refused within SESSION_CACHE_SECONDS", async () => {
    const doomed = await operator.createKey(user.id);
    expect((await call("/api/data", { "x-api-key": doomed.key })).status).toBe(200);
    await operator.deleteKey(doomed.id);
    await eventually(async () => (await call("/api/data", { "x-api-key": doomed.key })).status === 401, "the deleted key refused");
  });

  test("a key is never trusted past its expiry, even when it was cached a moment before", async () => {
    const soon = await operator.createKey(user.id);
    await operator.expireKeyAt(soon.id, new Date(Date.now() + 400));
    expect((await call("/api/data", { "x-api-key": soon.key })).status).toBe(200);
    await eventually(async () => (await call("/api/data", { "x-api-key": soon.key })).status === 401, "the expired key refused");
  });

  test("Better Auth's per-key rate limit: over it, 429 with Retry-After; such a key is counted on every request", async () => {
    const limited = await operator.createKey(user.id, { rateLimitEnabled: true, rateLimitMax: 3, rateLimitTimeWindow: 60_000 });
    for (let i = 0; i < 3; i++) {
      expect(await queriesDuring(async () => expect((await call("/api/data", { "x-api-key": limited.key })).status).toBe(200))).toBeGreaterThan(0);
    }
    const over = await call("/api/data", { "x-api-key": limited.key });
    expect(over.status).toBe(429);
    expect(JSON.parse(over.body)).toEqual({ error: "API key rate limit exceeded" });
    const retryAfter = Number(over.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(over.seen).toBeUndefined();
  });

  test("a key a signed-in user makes for themselves works too, with the self-service rate limit", async () => {
    const created = await fetch(gw.url + "/api/auth/api-key/create", {
      method: "POST",
      headers: { cookie, origin: gw.url, "content-type": "application/json" },
      body: JSON.stringify({ name: "mine" }),
    });
    expect(created.status).toBe(200);
    const body = (await created.json()) as { key: string; rateLimitMax: number; rateLimitEnabled: boolean };
    expect(body.key.startsWith("authgate_")).toBe(true);
    expect(body.rateLimitEnabled).toBe(true);
    expect(body.rateLimitMax).toBe(600);
    expect((await call("/api/data", { authorization: `Bearer ${body.key}` })).claims).toMatchObject({ sub: user.id, auth_method: "api_key" });
  });
});

describe("sessions for native apps (Better Auth's bearer plugin)", () => {
  async function signInBearer() {
    const { user } = await signUp(gw.url);
    const response = await fetch(gw.url + "/api/auth/sign-in/email", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: user.email, password: "correct horse battery" }),
    });
    expect(response.status).toBe(200);
    const token = response.headers.get("set-auth-token");
    expect(token).toBeTruthy();
    return { user, token: token! };
  }

  test("sign in, then Authorization: Bearer <session token>: the same JWT as a cookie session, from the same cache", async () => {
    const { user, token } = await signInBearer();
    const first = await call("/api/data", { authorization: `Bearer ${token}` });
    expect(first.status).toBe(200);
    expect(first.claims).toMatchObject({ sub: user.id, auth_method: "session", role: "user" });
    expect(typeof first.claims!.sid).toBe("string");
    expect(first.headers.getSetCookie()).toEqual([]); // no cookie jar to fill
    expect(await queriesDuring(() => call("/api/data", { authorization: `Bearer ${token}` }))).toBe(0);
  });

  test("sign-out with the bearer token, without an Origin header, ends it at once", async () => {
    const { token } = await signInBearer();
    expect((await call("/api/data", { authorization: `Bearer ${token}` })).status).toBe(200);
    const signOut = await fetch(gw.url + "/api/auth/sign-out", { method: "POST", headers: { authorization: `Bearer ${token}` } });
    expect(signOut.status).toBe(200);
    expect((await call("/api/data", { authorization: `Bearer ${token}` })).status).toBe(401);
  });

  test("an unsigned or tampered token is not a session", async () => {
    const { token } = await signInBearer();
    const [id, signature] = token.split(".");
    expect((await call("/api/data", { authorization: `Bearer ${id}` })).status).toBe(401);
    expect((await call("/api/data", { authorization: `Bearer ${id}.${signature!.slice(0, -2)}AA` })).status).toBe(401);
  });
});

describe("roles and bans", () => {
  test("allow.roles admits an admin and refuses a user; a role change reaches the JWT within the cache bound", async () => {
    const { user, cookie } = await signUp(gw.url);
    const before = await call("/api/admin/x", { cookie });
    expect(before.status).toBe(403);
    // A token minted now, with role "user", must not be served once the role changed.
    expect((await call("/api/data", { cookie })).claims).toMatchObject({ role: "user" });
    await operator.setRole(user.id, "admin");
    await eventually(async () => (await call("/api/admin/x", { cookie })).status === 200, "the admin admitted");
    const after = await call("/api/data", { cookie });
    expect(after.claims).toMatchObject({ role: "admin" });
    expect(decodeJwt(after.seen!.headers.get("authorization")!.slice(7)).role).toBe("admin");
  });

  test("a key's JWT carries its owner's role, and a key reaches allow.roles routes", async () => {
    const { user } = await signUp(gw.url);
    await operator.setRole(user.id, "admin");
    const key = await operator.createKey(user.id);
    const { status, claims } = await call("/api/admin/x", { "x-api-key": key.key });
    expect(status).toBe(200);
    expect(claims).toMatchObject({ role: "admin", auth_method: "api_key" });
  });

  test("banned through the admin API of this instance: the session and the key stop at once", async () => {
    const admin = await signUp(gw.url);
    await operator.setRole(admin.user.id, "admin");
    const victim = await signUp(gw.url);
    const key = await operator.createKey(victim.user.id);
    expect((await call("/api/data", { cookie: victim.cookie })).status).toBe(200);
    expect((await call("/api/data", { "x-api-key": key.key })).status).toBe(200);
    // The admin's own session was cached with role "user": let it expire first.
    await eventually(async () => (await call("/api/admin/x", { cookie: admin.cookie })).status === 200, "the admin's role seen");
    const ban = await fetch(gw.url + "/api/auth/admin/ban-user", {
      method: "POST",
      headers: { cookie: admin.cookie, origin: gw.url, "content-type": "application/json" },
      body: JSON.stringify({ userId: victim.user.id, banReason: "spam" }),
    });
    expect(ban.status).toBe(200);
    expect((await call("/api/data", { cookie: victim.cookie })).status).toBe(401);
    const withKey = await call("/api/data", { "x-api-key": key.key });
    expect(withKey.status).toBe(403);
    expect(JSON.parse(withKey.body)).toEqual({ error: "This account is banned" });
    // And signing in again is refused by Better Auth.
    const again = await fetch(gw.url + "/api/auth/sign-in/email", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: victim.user.email, password: "correct horse battery" }),
    });
    expect(again.status).toBe(403);
    // The code the sign-in page turns into its "account suspended" line (src/pages/messages.ts).
    expect(((await again.json()) as { code: string }).code).toBe("BANNED_USER");
  });

  test("banned in the database (another instance, the command line): refused within the cache bound", async () => {
    const victim = await signUp(gw.url);
    const key = await operator.createKey(victim.user.id);
    expect((await call("/api/data", { cookie: victim.cookie })).status).toBe(200);
    expect((await call("/api/data", { "x-api-key": key.key })).status).toBe(200);
    await operator.ban(victim.user.id);
    await eventually(async () => (await call("/api/data", { cookie: victim.cookie })).status === 401, "the banned session refused");
    await eventually(async () => (await call("/api/data", { "x-api-key": key.key })).status === 403, "the banned owner's key refused");
  });
});
