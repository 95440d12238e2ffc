import { describe, expect, test } from "bun:test";
import { acceptsKeys, admits, checksOrigin, readsSession, refusal, type SessionUser } from "../src/routes/policy";
import type { AllowRule, AuthMode, Route } from "../src/routes/table";
import { upstreamRoute } from "./helpers/routes";

function route(auth: AuthMode, allow?: Partial<AllowRule>): Route {
  return upstreamRoute({ auth, allow: allow && { emails: [], emailDomains: [], roles: [], emailVerified: false, apiKeys: true, ...allow } });
}

const ada: SessionUser = { email: "Ada@Example.com", email_verified: true, role: "user" };
const bob: SessionUser = { email: "bob@admins.test", email_verified: false, role: "user" };
const eve: SessionUser = { email: "eve@sub.admins.test", email_verified: true, role: "user" };
const root: SessionUser = { email: "root@elsewhere.test", email_verified: true, role: "admin" };
const ops: SessionUser = { email: "ops@elsewhere.test", email_verified: false, role: "user,ops" };

describe("refusal: what each auth mode and allow rule answers", () => {
  test.each<[string, Route, SessionUser | null, string | undefined]>([
    ["required, no session", route("required"), null, "401 Authentication required"],
    ["required, a session", route("required"), ada, undefined],
    ["optional, no session: forwarded anonymously", route("optional"), null, undefined],
    ["optional, a session", route("optional"), ada, undefined],
    ["none, no session", route("none"), null, undefined],
    ["allow by e-mail, listed (case-insensitively)", route("required", { emails: ["ada@example.com"] }), ada, undefined],
    ["allow by e-mail, not listed", route("required", { emails: ["ada@example.com"] }), bob, "403 Forbidden"],
    ["allow by domain, of it", route("required", { emailDomains: ["admins.test"] }), bob, undefined],
    ["allow by domain, a subdomain is another domain", route("required", { emailDomains: ["admins.test"] }), eve, "403 Forbidden"],
    ["allow by either list: the domain matches", route("required", { emails: ["x@y.test"], emailDomains: ["admins.test"] }), bob, undefined],
    ["allow: e-mail verified required, and it is", route("required", { emailVerified: true }), ada, undefined],
    ["allow: e-mail verified required, and it is not", route("required", { emailVerified: true }), bob, "403 Forbidden"],
    ["allow: listed, but not verified when that is required too", route("required", { emailDomains: ["admins.test"], emailVerified: true }), bob, "403 Forbidden"],
    ["allow, no session: 401 first", route("required", { emails: ["ada@example.com"] }), null, "401 Authentication required"],
    ["allow by role, an admin", route("required", { roles: ["admin"] }), root, undefined],
    ["allow by role, a user", route("required", { roles: ["admin"] }), ada, "403 Forbidden"],
    ["allow by role, one of several comma-separated roles", route("required", { roles: ["ops"] }), ops, undefined],
    ["allow by role or domain: the domain matches", route("required", { roles: ["admin"], emailDomains: ["example.com"] }), ada, undefined],
    ["allow by role, verified e-mail required on top: not verified", route("required", { roles: ["ops"], emailVerified: true }), ops, "403 Forbidden"],
    ["allow by role, no session: 401 first", route("required", { roles: ["admin"] }), null, "401 Authentication required"],
    ["allow with api_keys = false only: every signed-in user", route("required", { apiKeys: false }), bob, undefined],
  ])("%s", (_name, r, caller, expected) => {
    const refused = refusal(r, caller);
    expect(refused && `${refused.status} ${refused.publicMessage}`).toBe(expected);
  });
});

describe("admits: the allow rule alone", () => {
  test.each<[string, Partial<AllowRule>, string, boolean]>([
    ["an exact e-mail", { emails: ["a@b.test"] }, "a@b.test", true],
    ["an e-mail in another case", { emails: ["a@b.test"] }, "A@B.TEST", true],
    ["a longer e-mail that ends the same", { emails: ["a@b.test"] }, "xa@b.test", false],
    ["a domain", { emailDomains: ["b.test"] }, "a@b.test", true],
    ["a domain, upper-cased address", { emailDomains: ["b.test"] }, "A@B.Test", true],
    ["a domain that only ends the same", { emailDomains: ["b.test"] }, "a@xb.test", false],
    ["the domain as a local part", { emailDomains: ["b.test"] }, "b.test@evil.test", false],
    ["an address with @ in a quoted local part: the last @ counts", { emailDomains: ["b.test"] }, '"x@evil.test"@b.test', true],
    ["a role, exactly", { roles: ["admin"] }, "a@b.test", false],
  ])("%s", (_name, allow, email, expected) => {
    expect(admits({ emails: [], emailDomains: [], roles: [], emailVerified: false, apiKeys: true, ...allow }, { email, email_verified: false, role: "user" })).toBe(expected);
  });

  test.each<[string, string, boolean]>([
    ["the role itself", "admin", true],
    ["among several, with spaces", "user, admin", true],
    ["a role that only starts the same", "administrator", false],
    ["another case", "Admin", false],
    ["no role", "", false],
  ])("roles = [\"admin\"], the user's role %s", (_name, role, expected) => {
    expect(admits({ emails: [], emailDomains: [], roles: ["admin"], emailVerified: false, apiKeys: true }, { email: "a@b.test", email_verified: true, role })).toBe(expected);
  });
});

describe("which routes take API keys", () => {
  test.each<[string, Route, boolean]>([
    ["required, no allow", route("required"), true],
    ["required, allow without api_keys", route("required", { roles: ["admin"] }), true],
    ["required, api_keys = false", route("required", { apiKeys: false }), false],
    ["optional", route("optional"), true],
  ])("%s → %p", (_name, r, expected) => {
    expect(acceptsKeys(r)).toBe(expected);
  });
});

describe("which modes read the session and check origins", () => {
  test.each<[AuthMode, boolean]>([
    ["required", true],
    ["optional", true],
    ["none", false],
  ])("%s → %p", (auth, expected) => {
    expect(readsSession(route(auth))).toBe(expected);
    expect(checksOrigin(route(auth))).toBe(expected);
  });
});
