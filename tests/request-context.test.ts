import { describe, expect, test } from "bun:test";
import { chooseRequestId, compileTrustedProxies, establishContext } from "../src/ops/request-context";

/** The context stage: the request id, and who the client is, believed from headers only via a trusted proxy. */

describe("chooseRequestId", () => {
  test.each<[string | null, boolean]>([
    ["req-1", true],
    ["a".repeat(128), true],
    ["a".repeat(129), false],
    ["with space", false],
    ["tab\there", false],
    ["", false],
    ["caf\u00e9", false],
    [null, false],
  ])("%p kept: %p", (supplied, kept) => {
    const id = chooseRequestId(supplied);
    if (kept) expect(id).toBe(supplied!);
    else expect(id).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("establishContext", () => {
  const trustProxy = compileTrustedProxies(["10.0.0.0/8"]);
  const context = (peerIp: string | undefined, headers: Record<string, string>) =>
    establishContext({ headers: new Headers({ host: "gw.test", ...headers }), peerIp, ownProto: "http", trustProxy });

  test.each<[string, string | undefined, Record<string, string>, { clientIp?: string; forwardedFor?: string; forwardedProto: string; forwardedHost: string }]>([
    ["a direct client: its headers are not believed", "203.0.113.7", { "x-forwarded-for": "1.2.3.4", "x-forwarded-proto": "https", "x-forwarded-host": "evil.test" },
      { clientIp: "203.0.113.7", forwardedFor: "203.0.113.7", forwardedProto: "http", forwardedHost: "gw.test" }],
    ["a trusted proxy: the chain, the proto and host it forwards", "10.0.0.5", { "x-forwarded-for": "198.51.100.9", "x-forwarded-proto": "https", "x-forwarded-host": "app.example.com" },
      { clientIp: "198.51.100.9", forwardedFor: "198.51.100.9, 10.0.0.5", forwardedProto: "https", forwardedHost: "app.example.com" }],
    ["a trusted proxy, a spoofed hop before it: the first untrusted hop from the right is the client", "10.0.0.5", { "x-forwarded-for": "6.6.6.6, 198.51.100.9" },
      { clientIp: "198.51.100.9", forwardedFor: "6.6.6.6, 198.51.100.9, 10.0.0.5", forwardedProto: "http", forwardedHost: "gw.test" }],
    ["a trusted proxy with several values: the first counts", "10.0.0.5", { "x-forwarded-proto": "https, http", "x-forwarded-host": "a.example, b.example" },
      { clientIp: "10.0.0.5", forwardedFor: "10.0.0.5", forwardedProto: "https", forwardedHost: "a.example" }],
    ["no peer known (a caller of its own)", undefined, {}, { clientIp: undefined, forwardedFor: undefined, forwardedProto: "http", forwardedHost: "gw.test" }],
  ])("%s", (_name, peer, headers, expected) => {
    expect(context(peer, headers)).toMatchObject(expected);
  });
});
