import { describe, expect, test } from "bun:test";
import { bearerToken, chooseCredential, queryHoldsApiKey, type CredentialChoice, type CredentialHeaders } from "../src/auth/credential";

/** Which credential a request presents: one row per rule of src/auth/credential.ts. */

const KEY = `authgate_${"a".repeat(48)}`;
const OTHER_KEY = `authgate_${"b".repeat(48)}`;
const TOKEN = "s3ssi0nt0ken.c2lnbmF0dXJl";
const COOKIE = `better-auth.session_token=${TOKEN}; theme=dark`;

function headers(extra: Partial<CredentialHeaders>): CredentialHeaders {
  return { authorization: null, apiKey: null, cookie: null, ...extra };
}

describe("chooseCredential", () => {
  test.each<[string, Partial<CredentialHeaders>, boolean, CredentialChoice]>([
    ["nothing", {}, true, { credential: null }],
    ["only unrelated cookies", { cookie: "theme=dark" }, true, { credential: null }],
    ["the session cookie", { cookie: COOKIE }, true, { credential: { kind: "session", via: "cookie", token: TOKEN } }],
    ["the secure-prefixed session cookie", { cookie: `__Secure-better-auth.session_token=${TOKEN}` }, true, { credential: { kind: "session", via: "cookie", token: TOKEN } }],
    ["a bearer session token", { authorization: `Bearer ${TOKEN}` }, true, { credential: { kind: "session", via: "bearer", token: TOKEN } }],
    ["the scheme in any case, extra spaces", { authorization: `bEaReR   ${TOKEN} ` }, true, { credential: { kind: "session", via: "bearer", token: TOKEN } }],
    ["Basic credentials are not a session", { authorization: "Basic dXNlcjpwYXNz" }, true, { credential: null }],
    ["an empty bearer", { authorization: "Bearer " }, true, { credential: null }],
    ["a key as a bearer token", { authorization: `Bearer ${KEY}` }, true, { credential: { kind: "api_key", key: KEY } }],
    ["a key in X-Api-Key", { apiKey: KEY }, true, { credential: { kind: "api_key", key: KEY } }],
    ["X-Api-Key without the prefix is still a key attempt (refused later without a lookup)", { apiKey: "abc" }, true, { credential: { kind: "api_key", key: "abc" } }],
    ["the same key in both headers", { apiKey: KEY, authorization: `Bearer ${KEY}` }, true, { credential: { kind: "api_key", key: KEY } }],
    ["two different keys", { apiKey: KEY, authorization: `Bearer ${OTHER_KEY}` }, true, { refused: "conflicting-keys" }],
    ["a key and the cookie: the key wins where keys are taken", { apiKey: KEY, cookie: COOKIE }, true, { credential: { kind: "api_key", key: KEY } }],
    ["a key and the cookie where keys are refused: the cookie", { apiKey: KEY, cookie: COOKIE }, false, { credential: { kind: "session", via: "cookie", token: TOKEN } }],
    ["a key alone where keys are refused", { authorization: `Bearer ${KEY}` }, false, { refused: "keys-not-accepted" }],
    ["two different keys and the cookie where keys are refused: the cookie (the keys are ignored)", { apiKey: KEY, authorization: `Bearer ${OTHER_KEY}`, cookie: COOKIE }, false, { credential: { kind: "session", via: "cookie", token: TOKEN } }],
    ["two different keys alone where keys are refused", { apiKey: KEY, authorization: `Bearer ${OTHER_KEY}` }, false, { refused: "keys-not-accepted" }],
    ["a key in X-Api-Key and a bearer session where keys are refused: the session", { apiKey: KEY, authorization: `Bearer ${TOKEN}` }, false, { credential: { kind: "session", via: "bearer", token: TOKEN } }],
    ["the cookie and a bearer session token: the cookie (a browser app's own Authorization is not ours)", { cookie: COOKIE, authorization: "Bearer something-else" }, true, { credential: { kind: "session", via: "cookie", token: TOKEN } }],
    ["a bearer session where keys are refused is still a session", { authorization: `Bearer ${TOKEN}` }, false, { credential: { kind: "session", via: "bearer", token: TOKEN } }],
    ["a blank X-Api-Key is no key", { apiKey: "  " }, true, { credential: null }],
  ])("%s", (_name, extra, acceptKeys, expected) => {
    expect(chooseCredential(headers(extra), acceptKeys)).toEqual(expected);
  });
});

describe("bearerToken", () => {
  test.each<[string | null, string | undefined]>([
    [null, undefined],
    ["Bearer", undefined],
    ["Bearer x", "x"],
    ["bearer x", "x"],
    ["Bearerx", undefined],
    ["Token x", undefined],
  ])("%p → %p", (header, expected) => {
    expect(bearerToken(header)).toBe(expected);
  });
});

describe("queryHoldsApiKey", () => {
  test.each<[string, boolean]>([
    ["", false],
    ["?page=2", false],
    [`?api_key=${KEY}`, true],
    [`?apikey=${KEY}`, true],
    [`?key=${KEY}`, true],
    [`?q=1&token=${KEY}`, true],
    [`?key=${encodeURIComponent(KEY)}`, true],
    [`?key=%61uthgate_${"a".repeat(48)}`, true], // an escaped letter hides nothing
    [`?KEY=AUTHGATE_${"A".repeat(48)}`, true],
    ["?q=authgate_docs", true], // the prefix alone is enough to refuse: better a 400 than a key in a log
    ["?q=about+authgate", false],
    ["?authgate_=1", true], // a name can hold it too
    [`?authgate_${"a".repeat(48)}`, true], // a bare key, no =
    [`?auth=Bearer%20authgate_${"a".repeat(48)}`, true],
    [`?a=1;key=authgate_${"a".repeat(48)}`, true],
    [`?key=%zz%61uthgate_x`, true], // a malformed escape hides nothing after it
    ["?key=%E0%A4%A", false],
    ["?q=%2Fdocs", false],
  ])("%p → %p", (query, expected) => {
    expect(queryHoldsApiKey(query)).toBe(expected);
  });
});
