import { afterAll, describe, expect, test } from "bun:test";
import { connect } from "node:net";
import { MAX_PATH_SEGMENTS, pathProblem, rawRoutes, rawTargetProblem, type RawTarget } from "../src/proxy/path";

describe("pathProblem (request.url's path)", () => {
  test.each<[string, string | undefined]>([
    ["/api/items", undefined],
    ["/api/files/a%2Fb", undefined],
    ["/api/x/..%2Fauth/sign-in", "dot segment"],
    ["/api/%2e%2e%5cadmin", "dot segment"],
    ["/api/a%2F.%2e%2Fb", "dot segment"],
    ["/api/x/..;/admin", "dot segment"],
    ["/api/x/.%2e;jsessionid=1/admin", "dot segment"],
    ["/api/a;b/c", undefined],
    ["/api/a%zz", "invalid percent-encoding"],
    ["/api/a%4", "invalid percent-encoding"],
    ["/api/a%00b", "encoded NUL"],
  ])("%s → %p", (path, problem) => {
    expect(pathProblem(path)).toBe(problem);
  });
});

describe("rawTargetProblem (the target as received)", () => {
  const api = (...segments: string[]): RawTarget => ({ kind: "checked", segments: Object.fromEntries(["api", ...segments].map((s, i) => [`s${i}`, s])) });
  const at = (...segments: string[]): RawTarget => ({ kind: "checked", segments: Object.fromEntries(segments.map((s, i) => [`s${i}`, s])) });
  test.each<[string, RawTarget, string, string | undefined]>([
    ["plain segments", api("users", "42"), "/api/users/42", undefined],
    ["dots inside names", api("..x", ".hidden", "x.."), "/api/..x/.hidden/x..", undefined],
    ["/api/ itself", api(), "/api/", undefined],
    ["a .. segment", api("x", "..", "auth"), "/api/auth", "dot segment"],
    ["a . segment", api(".", "x"), "/api/x", "dot segment"],
    ["%2e%2E, as Bun decodes it", api(".."), "/", "dot segment"],
    ["behind a decoded %2F", api("../admin"), "/api/..%2Fadmin", "dot segment"],
    ["behind a backslash", api("a\\..\\b"), "/api/b", "dot segment"],
    ["with ;parameters, as Java servers read it", api("x", "..;", "auth"), "/api/x/..;/auth", "dot segment"],
    ["a ;parameter on a name", api("a;b", "c"), "/api/a;b/c", undefined],
    // Bun's params keep a fragment; its request.url resolves the dot and drops the rest.
    ["a . segment before #", api(".#items", "items"), "/api/", "fragment in the target"],
    ["a .. segment before #", api("x", "..#"), "/api/", "fragment in the target"],
    ["a fragment after a name", api("x#", "..", "y"), "/api/x", "fragment in the target"],
    ["an empty segment or too deep", { kind: "unchecked" }, "/api//x", `empty segment, or more than ${MAX_PATH_SEGMENTS} segments`],
    // Every path is checked, not only /api/: another route, or a static directory, is behind it.
    ["outside /api/, into another route", at("public", "..", "admin"), "/admin", "dot segment"],
    ["out of a static directory", at("assets", "..", "..", "etc", "passwd"), "/etc/passwd", "dot segment"],
    ["outside /api/, plain", at("healthz"), "/healthz", undefined],
    ["the root", at(), "/", undefined],
    ["the asterisk form: no path to check", { kind: "elsewhere" }, "*", undefined],
  ])("%s", (_name, raw, _resolvedPath, problem) => {
    expect(rawTargetProblem(raw)).toBe(problem);
  });
});

// The check rests on Bun matching `routes` against the target as sent while request.url is
// resolved. This pins that behaviour of the Bun in use: if an upgrade changes it, this fails.
describe("rawRoutes on a real Bun server", () => {
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    routes: Object.fromEntries(
      rawRoutes().map(({ pattern, kind }) => [pattern, (request: Bun.BunRequest) => Response.json({ kind, params: request.params, url: request.url })]),
    ),
    fetch: (request) => Response.json({ kind: "elsewhere", url: request.url }),
  });
  afterAll(() => server.stop(true));

  function rawGet(target: string): Promise<{ kind: string; params?: Record<string, string>; url: string }> {
    return new Promise((resolve, reject) => {
      const socket = connect(server.port!, "127.0.0.1", () => socket.write(`GET ${target} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n`));
      let text = "";
      socket.on("data", (chunk) => (text += chunk));
      socket.on("error", reject);
      socket.on("end", () => resolve(JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4))));
    });
  }

  test.each<[string, string, Record<string, string> | undefined, string]>([
    ["/api/x/../auth/y", "checked", { s0: "api", s1: "x", s2: "..", s3: "auth", s4: "y" }, "http://gw/api/auth/y"],
    ["/api/.%2E/x", "checked", { s0: "api", s1: "..", s2: "x" }, "http://gw/x"],
    ["/api/items/", "checked", { s0: "api", s1: "items" }, "http://gw/api/items/"],
    ["/api//x", "unchecked", {}, "http://gw/api//x"],
    ["/x/../api/y", "checked", { s0: "x", s1: "..", s2: "api", s3: "y" }, "http://gw/api/y"],
    ["/", "checked", {}, "http://gw/"],
    // The absolute form is matched on its path too.
    ["http://gw/a/../b", "checked", { s0: "a", s1: "..", s2: "b" }, "http://gw/b"],
  ])("%s is matched as %s with the segments sent", async (target, kind, params, url) => {
    const seen = await rawGet(target);
    expect(seen.kind).toBe(kind);
    expect(seen.params).toEqual(params);
    expect(seen.url).toBe(url);
  });
});
