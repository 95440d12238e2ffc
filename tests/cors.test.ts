import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { loadConfig, parseCorsOrigins } from "../src/config";
import { mergeVary, PREFLIGHT_MAX_AGE_SECONDS, preflight, withCors } from "../src/proxy/cors";
import { startBackend, type TestBackend } from "./helpers/backend";
import { signUp, startGateway, tempDir, type RunningGateway } from "./helpers/gateway";

/**
 * CORS_ORIGINS: the pure rules (preflight answers, headers on actual answers, Vary merging,
 * parsing the variable) as tables, then a real gateway in front of the recording backend, as a
 * browser on another origin would talk to it.
 */

const APP = "https://app.example.test";
const OTHER_APP = "http://localhost:5173";
const EVIL = "https://evil.example.test";
const allowed: ReadonlySet<string> = new Set([APP, OTHER_APP]);

/** Every `access-control-*` header of an answer, by name. */
function corsHeaders(headers: Headers): Record<string, string> {
  return Object.fromEntries([...headers].filter(([name]) => name.startsWith("access-control-")));
}

describe("preflight", () => {
  test.each<[string, string | null, string | null, string | null]>([
    ["no Origin", null, "PUT", "content-type"],
    ["no Access-Control-Request-Method: an OPTIONS request of its own", APP, null, "content-type"],
    ["neither", null, null, null],
  ])("%s → not a preflight (handled by the route)", (_name, origin, method, headers) => {
    expect(preflight(origin, method, headers, allowed)).toBeUndefined();
  });

  test.each<[string, string, string, string | null, Record<string, string>]>([
    [
      "a listed origin asking for PUT with two headers",
      APP,
      "PUT",
      "content-type,x-custom",
      { "access-control-allow-methods": "PUT", "access-control-allow-headers": "content-type, x-custom" },
    ],
    ["a listed origin asking for no headers", APP, "DELETE", null, { "access-control-allow-methods": "DELETE" }],
    ["an empty header list", APP, "PATCH", "", { "access-control-allow-methods": "PATCH" }],
    [
      "names lower-cased, repeated ones and empty list elements dropped",
      OTHER_APP,
      "POST",
      " X-Custom, ,x-custom,Content-Type,",
      { "access-control-allow-methods": "POST", "access-control-allow-headers": "x-custom, content-type" },
    ],
    ["a WebDAV method is answered as asked", APP, "PROPFIND", "depth", { "access-control-allow-methods": "PROPFIND", "access-control-allow-headers": "depth" }],
    ["authorization may be asked for (bearer clients)", APP, "GET", "authorization", { "access-control-allow-methods": "GET", "access-control-allow-headers": "authorization" }],
  ])("%s → 204", (_name, origin, method, requestHeaders, expected) => {
    const answer = preflight(origin, method, requestHeaders, allowed)!;
    expect(answer.status).toBe(204);
    expect(corsHeaders(answer.headers)).toEqual({
      "access-control-allow-origin": origin,
      "access-control-allow-credentials": "true",
      "access-control-max-age": String(PREFLIGHT_MAX_AGE_SECONDS),
      ...expected,
    });
    expect(answer.headers.get("vary")).toBe("Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
  });

  test.each<[string, string]>([
    ["an unlisted origin", EVIL],
    ["a look-alike of a listed one", `${APP}.evil.example`],
    ["a listed origin in other letters (browsers send lower case)", "HTTPS://APP.EXAMPLE.TEST"],
    ["a listed origin with a trailing slash", `${APP}/`],
    ["a listed origin on another port", `${APP}:8443`],
    ["Origin: null (a sandboxed frame, a file:// page)", "null"],
  ])("%s → 403 without any CORS header", async (_name, origin) => {
    const answer = preflight(origin, "GET", "x-custom", allowed)!;
    expect(answer.status).toBe(403);
    expect(await answer.json()).toEqual({ error: "Origin not allowed" });
    expect(corsHeaders(answer.headers)).toEqual({});
  });

  test.each<[string, string, string | null]>([
    ["a header name with a space", "GET", "x custom"],
    ["a header name with a colon", "GET", "x-a:b"],
    ["a header name with a non-ASCII letter", "GET", "x-é"],
    ["one bad name among good ones", "GET", "content-type, x(y), x-custom"],
    ["an empty method", "", null],
    ["a method with a space", "GE T", null],
  ])("%s → 400 without any CORS header", async (_name, method, requestHeaders) => {
    const answer = preflight(APP, method, requestHeaders, allowed)!;
    expect(answer.status).toBe(400);
    expect(await answer.json()).toEqual({ error: "Bad preflight request" });
    expect(corsHeaders(answer.headers)).toEqual({});
  });
});

describe("withCors on an actual answer", () => {
  test.each<[string, string, Record<string, string>, Record<string, string | null>]>([
    [
      "a listed origin",
      APP,
      {},
      { "access-control-allow-origin": APP, "access-control-allow-credentials": "true", vary: "Origin" },
    ],
    [
      "a listed origin, the answer varying already",
      APP,
      { vary: "Accept-Encoding" },
      { "access-control-allow-origin": APP, vary: "Accept-Encoding, Origin" },
    ],
    ["Origin in the Vary already (any case) is not repeated", APP, { vary: "accept-encoding, origin" }, { vary: "accept-encoding, origin" }],
    ["Vary: * stays alone", APP, { vary: "*" }, { vary: "*" }],
    [
      "a backend's own * is replaced by the origin",
      APP,
      { "access-control-allow-origin": "*", "access-control-allow-credentials": "false" },
      { "access-control-allow-origin": APP, "access-control-allow-credentials": "true" },
    ],
    [
      "a backend's Expose-Headers is kept",
      APP,
      { "access-control-expose-headers": "x-total-count" },
      { "access-control-expose-headers": "x-total-count", "access-control-allow-origin": APP },
    ],
    [
      "an unlisted origin gets none, and a backend's allow-origin goes",
      EVIL,
      { "access-control-allow-origin": "*", "access-control-allow-credentials": "true", vary: "Accept-Encoding" },
      { "access-control-allow-origin": null, "access-control-allow-credentials": null, vary: "Accept-Encoding, Origin" },
    ],
    [
      "a backend echoing an unlisted origin is overruled",
      EVIL,
      { "access-control-allow-origin": EVIL, "access-control-allow-credentials": "true" },
      { "access-control-allow-origin": null, "access-control-allow-credentials": null, vary: "Origin" },
    ],
  ])("%s", (_name, origin, before, after) => {
    const response = withCors(new Response("body", { headers: before }), origin, allowed);
    for (const [name, value] of Object.entries(after)) expect([name, response.headers.get(name)]).toEqual([name, value]);
  });

  test("the status and the body are the answer's own", async () => {
    const response = withCors(new Response("not here", { status: 404, headers: { "x-backend": "yes" } }), APP, allowed);
    expect(response.status).toBe(404);
    expect(response.headers.get("x-backend")).toBe("yes");
    expect(await response.text()).toBe("not here");
  });
});

test.each<[string, string | null, string[], string]>([
  ["none yet", null, ["Origin"], "Origin"],
  ["an empty value", "", ["Origin"], "Origin"],
  ["appended", "Accept-Encoding", ["Origin"], "Accept-Encoding, Origin"],
  ["present in another case", "ORIGIN", ["Origin"], "ORIGIN"],
  ["several, some present", "origin", ["Origin", "Access-Control-Request-Method"], "origin, Access-Control-Request-Method"],
  ["empty elements and spaces tidied", " a ,, b ", ["Origin"], "a, b, Origin"],
  ["* already varies on everything", "Accept, *", ["Origin"], "*"],
])("mergeVary: %s", (_name, existing, names, expected) => {
  expect(mergeVary(existing, names)).toBe(expected);
});

describe("CORS_ORIGINS", () => {
  test.each<[string, string | undefined, boolean, string[]]>([
    ["unset: same-origin only", undefined, false, []],
    ["one origin", "https://app.example.com", false, ["https://app.example.com"]],
    ["several, with spaces and empty items", " https://a.example.com ,, http://localhost:5173,", false, ["https://a.example.com", "http://localhost:5173"]],
    ["a trailing slash is forgiven", "https://app.example.com/", false, ["https://app.example.com"]],
    ["duplicates count once", "https://app.example.com,https://app.example.com/", false, ["https://app.example.com"]],
    ["a port", "https://app.example.com:8443", false, ["https://app.example.com:8443"]],
    ["an IPv6 loopback", "http://[::1]:8080", false, ["http://[::1]:8080"]],
    ["http outside production", "http://app.example.com", false, ["http://app.example.com"]],
    ["http on loopback in production", "http://localhost:5173,http://127.0.0.1:8080,http://[::1]", true, ["http://localhost:5173", "http://127.0.0.1:8080", "http://[::1]"]],
    ["https in production", "https://app.example.com", true, ["https://app.example.com"]],
  ])("%s", (_name, raw, production, expected) => {
    const problems: string[] = [];
    expect(parseCorsOrigins(raw, production, problems)).toEqual(expected);
    expect(problems).toEqual([]);
  });

  test.each<[string, string, boolean, string]>([
    ["*", "*", false, 'CORS_ORIGINS cannot be "*": answers carry credentials (the session cookie), and browsers refuse "*" with them; list each origin'],
    ["a path", "https://app.example.com/app", false, 'CORS_ORIGINS entries must be origins as browsers send them (scheme, host, optional port; no path, query or credentials): "https://app.example.com/app" is not, did you mean "https://app.example.com"?'],
    ["a query", "https://app.example.com?x=1", false, 'CORS_ORIGINS entries must be origins as browsers send them (scheme, host, optional port; no path, query or credentials): "https://app.example.com?x=1" is not, did you mean "https://app.example.com"?'],
    ["a fragment", "https://app.example.com#top", false, 'CORS_ORIGINS entries must be origins as browsers send them (scheme, host, optional port; no path, query or credentials): "https://app.example.com#top" is not, did you mean "https://app.example.com"?'],
    ["credentials (never echoed)", "https://user:secret@app.example.com", false, 'CORS_ORIGINS entries must be origins as browsers send them (scheme, host, optional port; no path, query or credentials): "https://***@app.example.com" is not, did you mean "https://app.example.com"?'],
    ["the default port spelt out", "https://app.example.com:443", false, 'CORS_ORIGINS entries must be origins as browsers send them (scheme, host, optional port; no path, query or credentials): "https://app.example.com:443" is not, did you mean "https://app.example.com"?'],
    ["upper case", "https://App.Example.com", false, 'CORS_ORIGINS entries must be origins as browsers send them (scheme, host, optional port; no path, query or credentials): "https://App.Example.com" is not, did you mean "https://app.example.com"?'],
    ["two trailing slashes", "https://app.example.com//", false, 'CORS_ORIGINS entries must be origins as browsers send them (scheme, host, optional port; no path, query or credentials): "https://app.example.com//" is not, did you mean "https://app.example.com"?'],
    ["another scheme", "ftp://app.example.com", false, 'CORS_ORIGINS entries must be http(s) origins such as https://app.example.com, got "ftp://app.example.com"'],
    ["no scheme", "app.example.com", false, 'CORS_ORIGINS entries must be http(s) origins such as https://app.example.com, got "app.example.com"'],
    ["null", "null", false, 'CORS_ORIGINS entries must be http(s) origins such as https://app.example.com, got "null"'],
    ["http in production", "http://app.example.com", true, 'CORS_ORIGINS entries must be https:// origins when NODE_ENV=production (http:// only for localhost, 127.0.0.0/8 or [::1]), got "http://app.example.com"'],
  ])("refused: %s", (_name, raw, production, problem) => {
    const problems: string[] = [];
    expect(parseCorsOrigins(raw, production, problems)).toEqual([]);
    expect(problems).toEqual([problem]);
  });

  test("one problem per bad entry; the good ones are not reported", () => {
    const problems: string[] = [];
    parseCorsOrigins("*,https://ok.example.com,https://a.example.com/x", false, problems);
    expect(problems).toHaveLength(2);
    expect(problems[0]).toStartWith('CORS_ORIGINS cannot be "*"');
    expect(problems[1]).toContain('"https://a.example.com/x"');
  });

  test("loadConfig: the listed origins are trusted origins too, once each", () => {
    const config = loadConfig({ CORS_ORIGINS: "https://app.example.com, https://b.example.com", TRUSTED_ORIGINS: "https://b.example.com,https://c.example.com" });
    expect(config.corsOrigins).toEqual(["https://app.example.com", "https://b.example.com"]);
    expect(config.trustedOrigins).toEqual(["https://b.example.com", "https://c.example.com", "https://app.example.com"]);
    expect(loadConfig({}).corsOrigins).toEqual([]);
  });

  test("loadConfig reports a bad CORS_ORIGINS with the other problems", () => {
    expect(() => loadConfig({ CORS_ORIGINS: "*", PORT: "x" })).toThrow(/PORT must be .*; CORS_ORIGINS cannot be "\*"/);
  });
});

describe("a gateway with CORS_ORIGINS", () => {
  let backend: TestBackend;
  // A front-end dev server behind `/` that answers with CORS headers of its own, as frameworks' defaults do.
  let permissive: ReturnType<typeof Bun.serve>;
  let gw: RunningGateway;
  let cookie: string;
  const dir = tempDir();

  beforeAll(async () => {
    backend = startBackend();
    permissive = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: () =>
        new Response("front-end", {
          headers: { "access-control-allow-origin": "*", "access-control-allow-credentials": "true", vary: "Accept-Encoding" },
        }),
    });
    gw = await startGateway({ BACKEND_API_URL: backend.url, FRONTEND_URL: permissive.url.href, CORS_ORIGINS: `${APP},${OTHER_APP}` }, dir.path);
    backend.trustGateway(gw.url, gw.url);
    ({ cookie } = await signUp(gw.url));
  });

  afterAll(async () => {
    await gw?.stop();
    await backend?.stop();
    await permissive?.stop(true);
    dir.remove();
  });

  /** The requests the backend received while `action` ran. */
  async function backendSaw(action: () => Promise<unknown>) {
    const before = backend.received.length;
    await action();
    return backend.received.slice(before);
  }

  const preflightOf = (path: string, origin: string, method = "PUT", headers = "content-type,x-custom") =>
    fetch(`${gw.url}${path}`, {
      method: "OPTIONS",
      headers: { origin, "access-control-request-method": method, "access-control-request-headers": headers },
    });

  test.each(["/api/items/1", "/api/auth/sign-in/email", "/auth/sign-in", "/", "/healthz"])(
    "a preflight to %s is answered by the gateway, without a session, and never forwarded",
    async (path) => {
      let response!: Response;
      const seen = await backendSaw(async () => (response = await preflightOf(path, APP)));
      expect(response.status).toBe(204);
      expect(corsHeaders(response.headers)).toEqual({
        "access-control-allow-origin": APP,
        "access-control-allow-credentials": "true",
        "access-control-allow-methods": "PUT",
        "access-control-allow-headers": "content-type, x-custom",
        "access-control-max-age": "600",
      });
      expect(response.headers.get("x-request-id")).toBeTruthy();
      expect(seen).toEqual([]);
    },
  );

  test("a preflight from an unlisted origin is refused and never forwarded, with a cookie too", async () => {
    let response!: Response;
    const seen = await backendSaw(async () => {
      response = await fetch(`${gw.url}/api/items/1`, {
        method: "OPTIONS",
        headers: { origin: EVIL, cookie, "access-control-request-method": "GET", "access-control-request-headers": "x-custom" },
      });
    });
    expect(response.status).toBe(403);
    expect(await response.json()).toEqual({ error: "Origin not allowed" });
    expect(corsHeaders(response.headers)).toEqual({});
    expect(seen).toEqual([]);
    expect(gw.logLines.some((line) => line.includes("preflight refused") && line.includes("an origin not in CORS_ORIGINS"))).toBe(true);
  });

  test("a preflight asking for a header name that is not a token is a 400", async () => {
    const response = await preflightOf("/api/items/1", APP, "GET", "x-a:b");
    expect(response.status).toBe(400);
    expect(corsHeaders(response.headers)).toEqual({});
  });

  test("an OPTIONS request that is no preflight (no Access-Control-Request-Method) is forwarded, with the headers", async () => {
    let response!: Response;
    const seen = await backendSaw(async () => {
      response = await fetch(`${gw.url}/api/items/1`, { method: "OPTIONS", headers: { origin: APP, cookie } });
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("access-control-allow-origin")).toBe(APP);
    expect(seen.map((request) => `${request.method} ${request.target}`)).toEqual(["OPTIONS /api/items/1"]);
  });

  test("a credentialed GET from a listed origin gets the headers, and the backend a JWT", async () => {
    let response!: Response;
    const seen = await backendSaw(async () => {
      response = await fetch(`${gw.url}/api/items/2`, { headers: { origin: APP, cookie } });
    });
    expect(response.status).toBe(200);
    expect(corsHeaders(response.headers)).toEqual({ "access-control-allow-origin": APP, "access-control-allow-credentials": "true" });
    expect(response.headers.get("vary")).toBe("Origin");
    expect(seen).toHaveLength(1);
    expect(seen[0]!.jwtError).toBeUndefined();
    expect(seen[0]!.claims?.sub).toBeTruthy();
  });

  test("each listed origin is answered with itself", async () => {
    const response = await fetch(`${gw.url}/api/items/2`, { headers: { origin: OTHER_APP, cookie } });
    expect(response.headers.get("access-control-allow-origin")).toBe(OTHER_APP);
  });

  test("an unlisted origin's GET gets no CORS header, so its page cannot read the answer", async () => {
    const response = await fetch(`${gw.url}/api/items/3`, { headers: { origin: EVIL, cookie } });
    expect(response.status).toBe(200);
    expect(corsHeaders(response.headers)).toEqual({});
    expect(response.headers.get("vary")).toBe("Origin");
  });

  test("an unlisted origin's POST riding on the cookie is refused by the CSRF check; a listed origin's passes", async () => {
    let refused!: Response;
    const refusedSeen = await backendSaw(async () => {
      refused = await fetch(`${gw.url}/api/items`, { method: "POST", headers: { origin: EVIL, cookie }, body: "x" });
    });
    expect(refused.status).toBe(403);
    expect(await refused.json()).toEqual({ error: "Cross-origin request refused" });
    expect(corsHeaders(refused.headers)).toEqual({});
    expect(refusedSeen).toEqual([]);

    let passed!: Response;
    const passedSeen = await backendSaw(async () => {
      passed = await fetch(`${gw.url}/api/items`, { method: "POST", headers: { origin: APP, cookie }, body: "x" });
    });
    expect(passed.status).toBe(200);
    expect(passed.headers.get("access-control-allow-origin")).toBe(APP);
    expect(passedSeen.map((request) => `${request.method} ${request.target} ${request.bodyBytes}`)).toEqual(["POST /api/items 1"]);
  });

  test("the gateway's own 401 is readable by a listed origin", async () => {
    const response = await fetch(`${gw.url}/api/items/4`, { headers: { origin: APP } });
    expect(response.status).toBe(401);
    expect(corsHeaders(response.headers)).toEqual({ "access-control-allow-origin": APP, "access-control-allow-credentials": "true" });
    expect(await response.json()).toEqual({ error: "Authentication required" });
  });

  test("the gateway's own 404 is readable by a listed origin", async () => {
    const response = await fetch(`${gw.url}/api/auth/no-such-endpoint`, { headers: { origin: APP } });
    expect(response.status).toBe(404);
    expect(response.headers.get("access-control-allow-origin")).toBe(APP);
  });

  test("a front-end's own CORS headers are overruled: the gateway decides", async () => {
    const listed = await fetch(`${gw.url}/index.html`, { headers: { origin: APP } });
    expect(await listed.text()).toBe("front-end");
    expect(corsHeaders(listed.headers)).toEqual({ "access-control-allow-origin": APP, "access-control-allow-credentials": "true" });
    expect(listed.headers.get("vary")).toBe("Accept-Encoding, Origin");

    const unlisted = await fetch(`${gw.url}/index.html`, { headers: { origin: EVIL } });
    expect(corsHeaders(unlisted.headers)).toEqual({});
  });

  test("Better Auth's sign-in from a listed origin passes its origin check, and the bearer token is readable", async () => {
    const email = `cors-${crypto.randomUUID()}@example.test`;
    await signUp(gw.url, email);
    const response = await fetch(`${gw.url}/api/auth/sign-in/email`, {
      method: "POST",
      headers: { origin: APP, "content-type": "application/json" },
      body: JSON.stringify({ email, password: "correct horse battery" }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("access-control-allow-origin")).toBe(APP);
    expect(response.headers.get("access-control-allow-credentials")).toBe("true");
    expect(response.headers.getSetCookie().some((line) => line.startsWith("better-auth.session_token="))).toBe(true);
    // Better Auth's bearer plugin lists its header itself; the gateway keeps that.
    expect(response.headers.get("set-auth-token")).toBeTruthy();
    expect(response.headers.get("access-control-expose-headers")).toContain("set-auth-token");
  });

  test("Better Auth's sign-in from an unlisted origin is refused by Better Auth's origin check", async () => {
    const email = `cors-${crypto.randomUUID()}@example.test`;
    await signUp(gw.url, email);
    const response = await fetch(`${gw.url}/api/auth/sign-in/email`, {
      method: "POST",
      headers: { origin: EVIL, "content-type": "application/json" },
      body: JSON.stringify({ email, password: "correct horse battery" }),
    });
    expect(response.status).toBe(403);
    expect(await response.json()).toMatchObject({ code: "INVALID_ORIGIN" });
    expect(corsHeaders(response.headers)).toEqual({});
    expect(response.headers.getSetCookie()).toEqual([]);
  });
});

describe("a gateway without CORS_ORIGINS", () => {
  let backend: TestBackend;
  let gw: RunningGateway;
  let cookie: string;
  const dir = tempDir();

  beforeAll(async () => {
    backend = startBackend();
    gw = await startGateway({ BACKEND_API_URL: backend.url }, dir.path);
    ({ cookie } = await signUp(gw.url));
  });

  afterAll(async () => {
    await gw?.stop();
    await backend?.stop();
    dir.remove();
  });

  test("a preflight-shaped OPTIONS request is forwarded as before, and nothing is added to the answer", async () => {
    const before = backend.received.length;
    const response = await fetch(`${gw.url}/api/items/1`, {
      method: "OPTIONS",
      headers: { origin: APP, cookie, "access-control-request-method": "PUT", "access-control-request-headers": "x-custom" },
    });
    expect(response.status).toBe(200);
    expect(corsHeaders(response.headers)).toEqual({});
    expect(response.headers.get("vary")).toBeNull();
    const seen = backend.received.slice(before);
    expect(seen.map((request) => `${request.method} ${request.target}`)).toEqual(["OPTIONS /api/items/1"]);
    expect(seen[0]!.headers.get("access-control-request-method")).toBe("PUT");
  });

  test("a cross-origin POST riding on the cookie is refused, as before", async () => {
    const response = await fetch(`${gw.url}/api/items`, { method: "POST", headers: { origin: APP, cookie }, body: "x" });
    expect(response.status).toBe(403);
  });
});
