import { beforeAll, describe, expect, test } from "bun:test";
import { makeSignature } from "better-auth/crypto";
import { decodeJwt } from "jose";
import { useGateways } from "./helpers/fixture";
import { signUp, type RunningGateway } from "./helpers/gateway";

const SECRET = "test-secret-test-secret-test-secret-0123"; // the helpers' BETTER_AUTH_SECRET

const fixture = useGateways();
const { gatewayWith } = fixture;

/** A proxied GET; returns its status and the JWT the backend received (if it was reached). */
async function call(gw: RunningGateway, cookie: string) {
  // A unique target finds this call's record even when calls run concurrently.
  const target = `/api/cached?call=${crypto.randomUUID()}`;
  const response = await fetch(gw.url + target, { headers: { cookie } });
  await response.arrayBuffer();
  const seen = fixture.backend.received.find((r) => r.target === target);
  return { status: response.status, token: seen?.headers.get("authorization")?.slice(7), claims: seen?.claims };
}

/** SQL queries the gateway ran while `action` ran. */
async function queriesDuring(gw: RunningGateway, action: () => Promise<unknown>) {
  const before = gw.gateway.auth.queryCount;
  await action();
  return gw.gateway.auth.queryCount - before;
}

describe("a validated session is cached", () => {
  let gw: RunningGateway;
  beforeAll(async () => {
    gw = await gatewayWith({ SESSION_CACHE_SECONDS: "5" });
  });

  test("a cache hit runs no SQL at all", async () => {
    const { cookie } = await signUp(gw.url);
    expect(await queriesDuring(gw, () => call(gw, cookie))).toBeGreaterThan(0);
    expect(await queriesDuring(gw, async () => {
      for (let i = 0; i < 20; i++) expect((await call(gw, cookie)).status).toBe(200);
    })).toBe(0);
  });

  test("a sign-out through this instance takes effect on the very next request", async () => {
    const { cookie } = await signUp(gw.url);
    expect((await call(gw, cookie)).status).toBe(200);
    expect((await call(gw, cookie)).status).toBe(200); // now served from the cache
    const signOut = await fetch(gw.url + "/api/auth/sign-out", { method: "POST", headers: { cookie, origin: gw.url } });
    expect(signOut.status).toBe(200);
    const after = await call(gw, cookie);
    expect(after.status).toBe(401);
    expect(after.token).toBeUndefined();
  });

  test("claims never mix sessions: interleaved callers each get their own", async () => {
    const alice = await signUp(gw.url);
    const bob = await signUp(gw.url);
    for (let i = 0; i < 5; i++) {
      const [a, b] = await Promise.all([call(gw, alice.cookie), call(gw, bob.cookie)]);
      expect(a.claims?.sub).toBe(alice.user.id);
      expect(a.claims?.email).toBe(alice.user.email);
      expect(b.claims?.sub).toBe(bob.user.id);
      expect(b.claims?.email).toBe(bob.user.email);
      expect(a.claims?.sid).not.toBe(b.claims?.sid);
    }
  });

  test("a forged cookie is not cached and costs no lookup; an unknown signed one at most one", async () => {
    const cachedBefore = gw.gateway.identities.cachedSessions;
    const forged = "better-auth.session_token=nosuchtoken.bm90IGEgc2lnbmF0dXJl";
    expect(await queriesDuring(gw, async () => expect((await call(gw, forged)).status).toBe(401))).toBe(0);
    const token = "unknown-but-correctly-signed";
    const signed = `better-auth.session_token=${encodeURIComponent(`${token}.${await makeSignature(token, SECRET)}`)}`;
    for (let i = 0; i < 3; i++) {
      expect(await queriesDuring(gw, async () => expect((await call(gw, signed)).status).toBe(401))).toBeLessThanOrEqual(1);
    }
    expect(gw.gateway.identities.cachedSessions).toBe(cachedBefore);
  });
});

describe("the bound on other instances' changes", () => {
  test("a session revoked elsewhere is honoured within SESSION_CACHE_SECONDS", async () => {
    const gw = await gatewayWith({ SESSION_CACHE_SECONDS: "1" });
    const { cookie, user } = await signUp(gw.url);
    expect((await call(gw, cookie)).status).toBe(200);
    // Another instance signs the user out: the row is gone from the shared database.
    await gw.db.kysely.deleteFrom("session").where("userId", "=", user.id).execute();
    expect((await call(gw, cookie)).status).toBe(200); // still cached here: the documented bound
    await Bun.sleep(1100); // the bound itself is time: there is no event to wait for
    expect((await call(gw, cookie)).status).toBe(401);
  });

  test("SESSION_CACHE_SECONDS=0 validates every request", async () => {
    const gw = await gatewayWith({ SESSION_CACHE_SECONDS: "0" });
    const { cookie } = await signUp(gw.url);
    await call(gw, cookie);
    expect(await queriesDuring(gw, () => call(gw, cookie))).toBeGreaterThan(0);
  });
});

describe("the JWT minted for a session", () => {
  test("is reused while more than half its lifetime remains, then renewed", async () => {
    // 4 s: `iat` is in whole seconds, so the token's first half lasts between 1 and 2 s, which
    // leaves room for two calls in a row (with 2 s, a token minted at x.95 s was due at once).
    const gw = await gatewayWith({ JWT_EXPIRATION: "4s" });
    const { cookie } = await signUp(gw.url);
    const first = await call(gw, cookie);
    const second = await call(gw, cookie);
    expect(first.token).toBeString();
    expect(second.token).toBe(first.token!);
    const { iat, exp } = decodeJwt(first.token!);
    expect(exp! - iat!).toBe(4);
    // Past half of the 4 s lifetime, a fresh token is minted.
    await Bun.sleep(Math.max(0, iat! * 1000 + 2000 - Date.now()) + 50);
    const third = await call(gw, cookie);
    expect(third.token).not.toBe(first.token!);
    expect(third.claims?.sub).toBe(first.claims?.sub as string);
    // The backend always gets a token with at least half its lifetime left.
    expect(decodeJwt(third.token!).exp! * 1000 - Date.now()).toBeGreaterThan(2000);
  });
});

describe("cache bounds", () => {
  test("10 000 distinct valid cookies keep both caches within SESSION_CACHE_ENTRIES", async () => {
    const gw = await gatewayWith({ SESSION_CACHE_ENTRIES: "500" });
    const { user } = await signUp(gw.url);
    // 10 000 sessions of one user, written as another instance would, with their signed cookies.
    const now = Date.now();
    const rows = Array.from({ length: 10_000 }, (_, i) => ({
      id: `bulk-session-${i}`,
      token: `bulk-token-${i}-${crypto.randomUUID()}`,
      userId: user.id,
      expiresAt: new Date(now + 86_400_000).toISOString(),
      createdAt: new Date(now).toISOString(),
      updatedAt: new Date(now).toISOString(),
    }));
    for (let i = 0; i < rows.length; i += 500) await gw.db.kysely.insertInto("session").values(rows.slice(i, i + 500)).execute();
    const cookies = await Promise.all(
      rows.map(async ({ token }) => `better-auth.session_token=${encodeURIComponent(`${token}.${await makeSignature(token, SECRET)}`)}`),
    );

    let ok = 0;
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < cookies.length) {
          const response = await fetch(gw.url + "/api/bulk", { headers: { cookie: cookies[next++]! } });
          await response.arrayBuffer();
          if (response.status === 200) ok++;
        }
      }),
    );
    expect(ok).toBe(10_000);
    expect(gw.gateway.identities.cachedSessions).toBeLessThanOrEqual(500);
    expect(gw.gateway.identities.cachedTokens).toBeLessThanOrEqual(500);
    expect(gw.gateway.identities.cachedSessions).toBeGreaterThan(0);
  }, 120_000);
});
