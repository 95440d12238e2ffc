import { describe, expect, test } from "bun:test";
import { ALLOWED_METHODS, checkProtocol, type ProtocolVerdict } from "../src/proxy/protocol";

const OWN = "gateway.test:3000";

describe("checkProtocol", () => {
  test.each<[string, { method?: string; url?: string; host: string | null; contentLength?: string }, ProtocolVerdict | { status: number; reason: string }]>([
    // Methods
    ["TRACE is answered, never forwarded", { method: "TRACE", host: "gw" }, { status: 405, reason: "TRACE is never forwarded" }],
    ["TRACK (Microsoft's TRACE) too", { method: "TRACK", host: "gw" }, { status: 405, reason: "TRACK is never forwarded" }],
    ["CONNECT never opens a tunnel", { method: "CONNECT", url: "db.internal:5432", host: "db.internal:5432" }, { status: 405, reason: "CONNECT is never forwarded" }],
    ["GET passes", { method: "GET", host: "gw" }, { ok: true, url: "http://gw/api/x" }],
    ["a WebDAV method passes", { method: "PROPFIND", host: "gw" }, { ok: true, url: "http://gw/api/x" }],
    ["QUERY passes", { method: "QUERY", host: "gw" }, { ok: true, url: "http://gw/api/x" }],
    // Host
    ["a name with a port", { host: "gw.example:8443", url: "http://gw.example:8443/api/x" }, { ok: true, url: "http://gw.example:8443/api/x" }],
    ["an IPv4 address", { host: "127.0.0.1:3000", url: "http://127.0.0.1:3000/" }, { ok: true, url: "http://127.0.0.1:3000/" }],
    ["an IPv6 literal", { host: "[::1]:3000", url: "http://[::1]:3000/" }, { ok: true, url: "http://[::1]:3000/" }],
    ["underscores (container names)", { host: "auth_gate:3000", url: "http://auth_gate:3000/" }, { ok: true, url: "http://auth_gate:3000/" }],
    ["empty Host", { host: "", url: "/api/x" }, { status: 400, reason: "empty Host" }],
    ["two Host lines (Bun joins them)", { host: "gw, evil.example" }, { status: 400, reason: "more than one Host" }],
    ["two Host lines, the second empty", { host: "gw, " }, { status: 400, reason: "more than one Host" }],
    ["a comma in one line", { host: "gw,evil.example" }, { status: 400, reason: "more than one Host" }],
    ["a path in Host", { host: "gw/x", url: "/api/x" }, { status: 400, reason: "invalid Host" }],
    ["userinfo in Host", { host: "user@gw", url: "/api/x" }, { status: 400, reason: "invalid Host" }],
    ["a space in Host", { host: "gw evil", url: "/api/x" }, { status: 400, reason: "invalid Host" }],
    ["a port that is not a number", { host: "gw:http" }, { status: 400, reason: "invalid Host" }],
    ["an unbracketed IPv6 address", { host: "::1" }, { status: 400, reason: "invalid Host" }],
    // The right characters, but no URL can be built on them (Better Auth's new URL() threw: a 500).
    ["a port over 65535", { host: "127.0.0.1:99999" }, { status: 400, reason: "invalid Host" }],
    ["five numbers", { host: "1.2.3.4.5" }, { status: 400, reason: "invalid Host" }],
    ["an IPv4 part over 255", { host: "999.0.0.1" }, { status: 400, reason: "invalid Host" }],
    ["a name ending in a number", { host: "foo.123" }, { status: 400, reason: "invalid Host" }],
    ["brackets around no address", { host: "[zz]" }, { status: 400, reason: "invalid Host" }],
    ["a valid Host with a target Bun could not place", { host: "gw", url: "gw:443" }, { status: 400, reason: "unresolvable target" }],
    // Content-Length
    ["one Content-Length", { host: "gw", contentLength: "42" }, { ok: true, url: "http://gw/api/x" }],
    ["two equal Content-Length lines (Bun joins them)", { host: "gw", contentLength: "2, 2" }, { status: 400, reason: "Content-Length is not one number" }],
    ["two different ones", { host: "gw", contentLength: "2, 3" }, { status: 400, reason: "Content-Length is not one number" }],
    ["a signed one", { host: "gw", contentLength: "+2" }, { status: 400, reason: "Content-Length is not one number" }],
    // No Host at all: HTTP/1.0 (Bun answers HTTP/1.1 without Host with 400 itself)
    ["HTTP/1.0 without Host: resolved against the gateway's origin", { host: null, url: "/healthz" }, { ok: true, url: `http://${OWN}/healthz` }],
    ["HTTP/1.0 without Host keeps the raw query", { host: null, url: "/api/x?a=%2F&a=1" }, { ok: true, url: `http://${OWN}/api/x?a=%2F&a=1` }],
    ["HTTP/1.0 without Host, asterisk-form", { host: null, url: "*" }, { status: 400, reason: "a request without Host and without an origin-form target" }],
  ])("%s", (_name, { method = "GET", url = "http://gw/api/x", host, contentLength }, expected) => {
    const verdict = checkProtocol({ method, url, host, ownHost: OWN, contentLength });
    if ("status" in expected) {
      expect(verdict.ok).toBe(false);
      if (verdict.ok) return;
      expect({ status: verdict.status as number, reason: verdict.reason }).toEqual(expected);
      expect(verdict.error).toBe(verdict.status === 405 ? "Method not allowed" : contentLength ? "Invalid Content-Length" : "Invalid Host header");
      if (verdict.status === 405) expect(verdict.headers.allow).toBe(ALLOWED_METHODS);
    } else {
      expect(verdict).toEqual(expected);
    }
  });

  test("CONNECT's answer closes the connection (Bun would read what follows as tunnel data)", () => {
    const verdict = checkProtocol({ method: "CONNECT", url: "x:443", host: "x:443", ownHost: OWN });
    expect(verdict).toMatchObject({ ok: false, headers: { connection: "close" } });
  });
});
