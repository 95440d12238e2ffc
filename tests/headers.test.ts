import { describe, expect, test } from "bun:test";
import {
  downstreamResponseHeaders,
  removeHopByHop,
  sessionTokenFromCookie,
  upstreamRequestHeaders,
  withoutAuthCookies,
  type Forwarding,
} from "../src/proxy/headers";

const FORWARDED: Forwarding = { requestId: "req-1", forwardedFor: "203.0.113.7", forwardedProto: "https", forwardedHost: "gateway.test" };
const TOKEN = "header.payload.signature";

/** Headers as a plain object (lower-case names), so a whole set can be compared at once. */
function entries(headers: Headers): Record<string, string> {
  return Object.fromEntries(headers.entries());
}

describe("removeHopByHop", () => {
  test.each<[string, Record<string, string>, Record<string, string>]>([
    [
      "every RFC 9110 hop-by-hop header",
      {
        connection: "close",
        "keep-alive": "timeout=5",
        "proxy-authenticate": "Basic",
        "proxy-authorization": "Basic eDp5",
        "proxy-connection": "keep-alive",
        te: "trailers",
        trailer: "x-checksum",
        "transfer-encoding": "chunked",
        upgrade: "websocket",
        "content-type": "text/plain",
      },
      { "content-type": "text/plain" },
    ],
    [
      "headers named in Connection",
      { connection: "X-Debug, x-trace ,keep-alive", "x-debug": "1", "x-trace": "2", "x-other": "3" },
      { "x-other": "3" },
    ],
    ["no hop-by-hop headers: nothing changes", { accept: "*/*", "x-a": "b" }, { accept: "*/*", "x-a": "b" }],
    ["empty Connection tokens are ignored", { connection: " , ,", accept: "*/*" }, { accept: "*/*" }],
  ])("%s", (_name, init, expected) => {
    const headers = new Headers(init);
    removeHopByHop(headers);
    expect(entries(headers)).toEqual(expected);
  });
});

describe("withoutAuthCookies", () => {
  test.each<[string, string, string | null]>([
    ["session token removed", "better-auth.session_token=abc.def; theme=dark", "theme=dark"],
    ["session data removed", "a=1; better-auth.session_data=eyJ4Ijp7fX0=; b=2", "a=1; b=2"],
    ["dont_remember removed", "better-auth.dont_remember=true; c=3", "c=3"],
    ["__Secure- prefix removed", "__Secure-better-auth.session_token=abc; d=4", "d=4"],
    ["__Host- prefix removed", "e=5; __Host-better-auth.x=y", "e=5"],
    [
      "other cookies kept byte for byte, in order",
      "z=last; better-auth.session_token=t; a=%22quoted%22; m=\"dq\"; better-auth.session_data=d; k=v",
      'z=last; a=%22quoted%22; m="dq"; k=v',
    ],
    ["values containing = kept intact", "jwt=a=b==; better-auth.session_token=x=y; q=c=d", "jwt=a=b==; q=c=d"],
    ["only auth cookies: null", "better-auth.session_token=a; __Secure-better-auth.session_data=b", null],
    // RFC 2965 separated cookies with commas: a backend reading it so must not find the session there.
    ["a session cookie behind a comma goes with its pair", "theme=dark, __Secure-better-auth.session_token=t; k=v", "k=v"],
    ["a comma with no auth cookie behind it is kept", "d=Tue, 01 Dec 2026; k=v", "d=Tue, 01 Dec 2026; k=v"],
    ["empty header: null", "", null],
    ["similar names that are not Better Auth's kept", "better-authx=1; my-better-auth.session_token=2; better_auth.s=3", "better-authx=1; my-better-auth.session_token=2; better_auth.s=3"],
    ["a Better Auth name as a value is kept", "ref=better-auth.session_token", "ref=better-auth.session_token"],
    ["cookie without = kept", "flag; better-auth.session_token=a", "flag"],
    ["empty pairs and stray spaces dropped", "a=1;;  b=2 ;", "a=1; b=2"],
  ])("%s", (_name, cookie, expected) => {
    expect(withoutAuthCookies(cookie)).toBe(expected);
  });
});

describe("upstreamRequestHeaders", () => {
  test.each<[string, Record<string, string>, Forwarding, Record<string, string>]>([
    [
      "client's host, authorization and forwarding headers replaced by the gateway's",
      {
        host: "evil.test",
        authorization: "Bearer forged",
        "x-forwarded-for": "10.0.0.1",
        "x-forwarded-proto": "http",
        "x-forwarded-host": "evil.test",
        forwarded: "for=10.0.0.1",
        "x-request-id": "client chosen id",
        accept: "application/json",
      },
      FORWARDED,
      {
        accept: "application/json",
        authorization: `Bearer ${TOKEN}`,
        "x-request-id": "req-1",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "gateway.test",
      },
    ],
    [
      "no x-forwarded-for when the client address is unknown, and the client's is still dropped",
      { "x-forwarded-for": "10.0.0.1" },
      { requestId: "req-1", forwardedFor: undefined, forwardedProto: "http", forwardedHost: "gw:3000" },
      { authorization: `Bearer ${TOKEN}`,
        "x-request-id": "req-1", "x-forwarded-proto": "http", "x-forwarded-host": "gw:3000" },
    ],
    [
      "hop-by-hop and Connection-named headers removed",
      { connection: "keep-alive, x-hop", "keep-alive": "timeout=5", "x-hop": "1", te: "trailers", upgrade: "h2c", "x-keep": "2" },
      FORWARDED,
      {
        "x-keep": "2",
        authorization: `Bearer ${TOKEN}`,
        "x-request-id": "req-1",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "gateway.test",
      },
    ],
    [
      "Better Auth cookies removed, others kept in order",
      { cookie: "a=1; better-auth.session_token=s.t; b=x=y; __Secure-better-auth.session_data=d; c=3" },
      FORWARDED,
      {
        cookie: "a=1; b=x=y; c=3",
        authorization: `Bearer ${TOKEN}`,
        "x-request-id": "req-1",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "gateway.test",
      },
    ],
    [
      "no Cookie header when only Better Auth cookies were sent",
      { cookie: "better-auth.session_token=s; better-auth.dont_remember=true" },
      FORWARDED,
      {
        authorization: `Bearer ${TOKEN}`,
        "x-request-id": "req-1",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "gateway.test",
      },
    ],
    [
      "client-address headers backends trust are dropped, underscore spellings too (CGI reads X_Forwarded_For as X-Forwarded-For)",
      {
        "x-real-ip": "10.0.0.1",
        "true-client-ip": "10.0.0.2",
        "cf-connecting-ip": "10.0.0.3",
        "x-forwarded-port": "8443",
        "x-forwarded-prefix": "/admin",
        x_forwarded_for: "10.0.0.4",
        "x-forwarded_host": "evil.test",
        x_real_ip: "10.0.0.5",
        x_authorization_hint: "kept: not a name the gateway owns",
      },
      FORWARDED,
      {
        x_authorization_hint: "kept: not a name the gateway owns",
        authorization: `Bearer ${TOKEN}`,
        "x-request-id": "req-1",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "gateway.test",
      },
    ],
    [
      "identity and original-URL headers a client could forge are dropped: X-Forwarded-*, X-Auth-Request-*, REMOTE_USER, X-Original-URL",
      {
        "x-forwarded-user": "admin",
        "x-forwarded-email": "root@example.com",
        "x-forwarded-groups": "admins",
        "x-forwarded-access-token": "forged",
        x_forwarded_preferred_username: "admin",
        "x-auth-request-user": "admin",
        "x-auth-request-groups": "admins",
        "remote-user": "admin",
        "x-remote-user": "admin",
        "x-webauth-user": "admin",
        "x-original-url": "/api/admin",
        "x-rewrite-url": "/api/admin",
        "x-original-uri": "/api/admin",
        "x-forwardedness": "kept: not of the family",
      },
      FORWARDED,
      {
        "x-forwardedness": "kept: not of the family",
        authorization: `Bearer ${TOKEN}`,
        "x-request-id": "req-1",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "gateway.test",
      },
    ],
    [
      "Expect is dropped: Bun has answered 100-continue to the client already",
      { expect: "100-continue", "content-length": "3" },
      FORWARDED,
      {
        "content-length": "3",
        authorization: `Bearer ${TOKEN}`,
        "x-request-id": "req-1",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "gateway.test",
      },
    ],
    [
      "content-length kept without transfer-encoding",
      { "content-type": "application/json", "content-length": "17" },
      FORWARDED,
      {
        "content-type": "application/json",
        "content-length": "17",
        authorization: `Bearer ${TOKEN}`,
        "x-request-id": "req-1",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "gateway.test",
      },
    ],
    [
      "content-length and transfer-encoding both dropped when both were sent",
      { "content-length": "17", "transfer-encoding": "chunked" },
      FORWARDED,
      {
        authorization: `Bearer ${TOKEN}`,
        "x-request-id": "req-1",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-proto": "https",
        "x-forwarded-host": "gateway.test",
      },
    ],
  ])("%s", (_name, init, forwarded, expected) => {
    expect(entries(upstreamRequestHeaders(new Headers(init), TOKEN, forwarded))).toEqual(expected);
  });

  test("the incoming headers are not modified", () => {
    const incoming = new Headers({ authorization: "Bearer forged", cookie: "better-auth.session_token=s; a=1", connection: "close" });
    upstreamRequestHeaders(incoming, TOKEN, FORWARDED);
    expect(entries(incoming)).toEqual({
      authorization: "Bearer forged",
      cookie: "better-auth.session_token=s; a=1",
      connection: "close",
    });
  });

  test("a client cannot keep its Authorization by naming it in Connection", () => {
    const headers = upstreamRequestHeaders(new Headers({ connection: "authorization", authorization: "Bearer forged" }), TOKEN, FORWARDED);
    expect(headers.get("authorization")).toBe(`Bearer ${TOKEN}`);
  });
});

describe("downstreamResponseHeaders", () => {
  test.each<[string, Record<string, string>, string[], Record<string, string>]>([
    [
      "content-encoding and content-length pass unchanged",
      { "content-encoding": "gzip", "content-length": "1234", "content-type": "application/json", etag: '"v1"' },
      [],
      { "content-encoding": "gzip", "content-length": "1234", "content-type": "application/json", etag: '"v1"' },
    ],
    [
      "hop-by-hop and Connection-named headers removed",
      { connection: "x-hop", "x-hop": "1", "keep-alive": "timeout=5", "transfer-encoding": "chunked", "proxy-authenticate": "Basic", vary: "accept" },
      [],
      { vary: "accept" },
    ],
  ])("%s", (_name, init, sessionCookies, expected) => {
    expect(entries(downstreamResponseHeaders(new Headers(init), sessionCookies))).toEqual(expected);
  });

  test.each<[string, string[], string[], string[]]>([
    ["several upstream cookies, no session cookies", ["a=1; Path=/", "b=2; HttpOnly"], [], ["a=1; Path=/", "b=2; HttpOnly"]],
    [
      "session cookies added after the upstream's",
      ["a=1; Path=/", "b=2; Expires=Wed, 21 Oct 2026 07:28:00 GMT"],
      ["better-auth.session_token=new; Path=/; HttpOnly; SameSite=Lax", "better-auth.session_data=d; Path=/"],
      [
        "a=1; Path=/",
        "b=2; Expires=Wed, 21 Oct 2026 07:28:00 GMT",
        "better-auth.session_token=new; Path=/; HttpOnly; SameSite=Lax",
        "better-auth.session_data=d; Path=/",
      ],
    ],
    ["session cookies only", [], ["better-auth.session_token=new; Path=/"], ["better-auth.session_token=new; Path=/"]],
    ["none at all", [], [], []],
  ])("set-cookie: %s", (_name, upstreamCookies, sessionCookies, expected) => {
    const upstream = new Headers();
    for (const cookie of upstreamCookies) upstream.append("set-cookie", cookie);
    expect(downstreamResponseHeaders(upstream, sessionCookies).getSetCookie()).toEqual(expected);
  });

  test("the upstream headers are not modified", () => {
    const upstream = new Headers({ connection: "close", "set-cookie": "a=1" });
    downstreamResponseHeaders(upstream, ["better-auth.session_token=x"]);
    expect(upstream.get("connection")).toBe("close");
    expect(upstream.getSetCookie()).toEqual(["a=1"]);
  });
});

describe("sessionTokenFromCookie", () => {
  test.each<[string, string | null, string | undefined]>([
    ["no Cookie header", null, undefined],
    ["no session cookie", "theme=dark; a=1", undefined],
    ["the plain session cookie", "theme=dark; better-auth.session_token=abc.sig%3D; x=1", "abc.sig%3D"],
    ["the __Secure- session cookie", "__Secure-better-auth.session_token=def.sig", "def.sig"],
    ["the session data cookie is not the token", "better-auth.session_data=xyz", undefined],
    ["an empty value", "better-auth.session_token=", undefined],
    ["two session cookies key the cache together", "better-auth.session_token=a.1; __Secure-better-auth.session_token=b.2", "a.1;b.2"],
    ["a similarly named cookie does not count", "my-better-auth.session_token=zzz", undefined],
  ])("%s", (_name, header, expected) => {
    expect(sessionTokenFromCookie(header)).toBe(expected);
  });
});
