import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { sha256, startBackend, type TestBackend } from "./helpers/backend";
import { freePort, signUp, startGateway, tempDir, type RunningGateway } from "./helpers/gateway";

let backend: TestBackend;
let gw: RunningGateway;
let dir: ReturnType<typeof tempDir>;
let cookie: string;
let user: { id: string; email: string };

beforeAll(async () => {
  dir = tempDir();
  backend = startBackend();
  gw = await startGateway({ BACKEND_API_URL: backend.url, PROXY_TIMEOUT_MS: "500" }, dir.path);
  backend.trustGateway(gw.url, gw.url);
  ({ cookie, user } = await signUp(gw.url));
});

afterAll(async () => {
  await gw?.stop();
  await backend?.stop();
  dir?.remove();
});

/** Runs `action` and returns the requests the backend received meanwhile. */
async function backendRequestsDuring(action: () => Promise<unknown>) {
  const before = backend.received.length;
  await action();
  return backend.received.slice(before);
}

const authed = (init: RequestInit = {}): RequestInit => ({
  ...init,
  headers: { cookie, ...(init.headers as Record<string, string>) },
});

describe("proxying an authenticated request", () => {
  const target = "/api/items/a%2Fb/%E2%9C%93?b=2&a=1&a=3&sp=%20+x&raw=%zz&empty=&=v";

  test.each(["GET", "HEAD", "DELETE", "OPTIONS"])("%s keeps the raw path and query byte for byte", async (method) => {
    const seen = await backendRequestsDuring(async () => {
      const response = await fetch(gw.url + target, authed({ method }));
      expect(response.status).toBe(200);
      expect(response.headers.get("x-backend")).toBe("yes");
      await response.arrayBuffer();
    });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.method).toBe(method);
    expect(seen[0]!.target).toBe(target);
    expect(seen[0]!.jwtError).toBeUndefined();
    expect(seen[0]!.claims?.sub).toBe(user.id);
  });

  test.each(["POST", "PUT", "PATCH"])("%s streams a few MB of binary body unchanged", async (method) => {
    const body = new Uint8Array(randomBytes(4 * 1024 * 1024 + 17));
    const seen = await backendRequestsDuring(async () => {
      const response = await fetch(gw.url + target, authed({ method, body, headers: { "content-type": "application/octet-stream" } }));
      expect(response.status).toBe(200);
      const echoed = (await response.json()) as { bodySha256: string; bodyBytes: number; target: string };
      expect(echoed.bodyBytes).toBe(body.byteLength);
      expect(echoed.bodySha256).toBe(sha256(body));
    });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.method).toBe(method);
    expect(seen[0]!.target).toBe(target);
    expect(seen[0]!.bodySha256).toBe(sha256(body));
  });

  test("a chunked request body (no content-length) streams through", async () => {
    const parts = [new Uint8Array(randomBytes(300_000)), new Uint8Array(randomBytes(500_001))];
    const whole = new Uint8Array([...parts[0]!, ...parts[1]!]);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const part of parts) controller.enqueue(part);
        controller.close();
      },
    });
    const response = await fetch(gw.url + "/api/upload", authed({ method: "POST", body: stream }));
    const echoed = (await response.json()) as { bodySha256: string; bodyBytes: number };
    expect(echoed.bodyBytes).toBe(whole.byteLength);
    expect(echoed.bodySha256).toBe(sha256(whole));
  });

  test("the backend gets the gateway's JWT, not the client's Authorization or session cookie", async () => {
    const seen = await backendRequestsDuring(async () => {
      const response = await fetch(gw.url + "/api/whoami", authed({ headers: { authorization: "Bearer forged", cookie: `${cookie}; theme=dark` } }));
      expect(response.status).toBe(200);
      await response.arrayBuffer();
    });
    const headers = seen[0]!.headers;
    expect(headers.get("authorization")).toStartWith("Bearer ey");
    expect(headers.get("authorization")).not.toContain("forged");
    expect(headers.get("cookie")).toBe("theme=dark");
    expect(seen[0]!.jwtError).toBeUndefined();
  });
});

describe("the JWT the backend receives", () => {
  test("verifies against the JWKS with chosen claims only", async () => {
    const [seen] = await backendRequestsDuring(async () => {
      await (await fetch(gw.url + "/api/claims", authed())).arrayBuffer();
    });
    expect(seen!.jwtError).toBeUndefined();
    expect(seen!.protectedHeader?.alg).toBe("EdDSA");
    expect(typeof seen!.protectedHeader?.kid).toBe("string");
    const claims = seen!.claims!;
    expect(claims.iss).toBe(gw.url);
    expect(claims.aud).toBe(gw.url);
    expect(claims.sub).toBe(user.id);
    expect(claims.email).toBe(user.email);
    expect(claims.email_verified).toBe(false);
    expect(claims.name).toBe("Test User");
    expect(typeof claims.sid).toBe("string");
    expect(claims.exp! - claims.iat!).toBe(15 * 60);
    // Not the whole user row.
    expect(Object.keys(claims).sort()).toEqual(["aud", "auth_method", "email", "email_verified", "exp", "iat", "iss", "name", "role", "sid", "sub"]);
    expect(claims.role).toBe("user");
    expect(claims.auth_method).toBe("session");
  });

  test("a token signed by anyone else does not verify at the backend", async () => {
    const { SignJWT, generateKeyPair } = await import("jose");
    const { privateKey } = await generateKeyPair("EdDSA");
    const forged = await new SignJWT({ sub: user.id }).setProtectedHeader({ alg: "EdDSA", kid: "x" }).setIssuer(gw.url).setAudience(gw.url).setExpirationTime("5m").sign(privateKey);
    // Direct to the backend: it must reject what the gateway did not sign.
    const [seen] = await backendRequestsDuring(async () => {
      await (await fetch(backend.url + "/api/direct", { headers: { authorization: `Bearer ${forged}` } })).arrayBuffer();
    });
    expect(seen!.jwtError).toBeString();
    expect(seen!.claims).toBeUndefined();
  });
});

describe("requests answered without the backend", () => {
  test.each([
    ["no cookie", {}],
    ["a garbage session cookie", { cookie: "better-auth.session_token=garbage" }],
    ["a well-formed but unknown signed token", { cookie: "better-auth.session_token=abc.def" }],
    ["only unrelated cookies", { cookie: "theme=dark" }],
  ])("%s → 401", async (_name, headers) => {
    const seen = await backendRequestsDuring(async () => {
      const response = await fetch(gw.url + "/api/items", { method: "POST", body: "x", headers: headers as Record<string, string> });
      expect(response.status).toBe(401);
      expect(response.headers.get("content-type")).toContain("application/json");
      expect(await response.json()).toEqual({ error: "Authentication required" });
    });
    expect(seen).toHaveLength(0);
  });

  test("after sign-out the old cookie gets 401", async () => {
    const session = await signUp(gw.url);
    expect((await fetch(gw.url + "/api/before", { headers: { cookie: session.cookie } })).status).toBe(200);
    const signOut = await fetch(gw.url + "/api/auth/sign-out", { method: "POST", headers: { cookie: session.cookie, origin: gw.url } });
    expect(signOut.status).toBe(200);
    const seen = await backendRequestsDuring(async () => {
      const response = await fetch(gw.url + "/api/after", { headers: { cookie: session.cookie } });
      expect(response.status).toBe(401);
      expect(await response.json()).toEqual({ error: "Authentication required" });
    });
    expect(seen).toHaveLength(0);
  });

  test("/api/auth/* is Better Auth's and never forwarded", async () => {
    const seen = await backendRequestsDuring(async () => {
      for (const path of ["/api/auth/get-session", "/api/auth/jwks", "/api/auth/no-such-route", "/api/auth/token"]) {
        const response = await fetch(gw.url + path, authed());
        expect(response.headers.get("x-backend")).toBeNull();
        await response.arrayBuffer();
      }
    });
    expect(seen).toHaveLength(0);
  });

  test("/api/auth/token returns a JWT for the session", async () => {
    const response = await fetch(gw.url + "/api/auth/token", authed());
    expect(response.status).toBe(200);
    const { token } = (await response.json()) as { token: string };
    expect(token.split(".")).toHaveLength(3);
  });
});

describe("backend responses pass through as they are", () => {
  test.each([404, 500, 503, 418])("status %d with its body", async (status) => {
    const response = await fetch(gw.url + `/api/status/${status}`, authed());
    expect(response.status).toBe(status);
    expect(response.headers.get("x-backend")).toBe("yes");
    expect(await response.text()).toBe(`status ${status}`);
  });

  test("204 has no body", async () => {
    const response = await fetch(gw.url + "/api/status/204", authed());
    expect(response.status).toBe(204);
    expect(await response.text()).toBe("");
  });

  test("a redirect is returned, not followed", async () => {
    const seen = await backendRequestsDuring(async () => {
      const response = await fetch(gw.url + "/api/redirect", authed({ redirect: "manual" }));
      expect(response.status).toBe(302);
      expect(response.headers.get("location")).toBe("/api/elsewhere");
    });
    expect(seen.map((r) => r.target)).toEqual(["/api/redirect"]);
  });

  test("a gzip body arrives compressed and byte-identical", async () => {
    const viaGateway = await fetch(gw.url + "/api/gzip", authed({ decompress: false } as RequestInit));
    const direct = await fetch(backend.url + "/api/gzip", { decompress: false } as RequestInit);
    expect(viaGateway.headers.get("content-encoding")).toBe("gzip");
    const [a, b] = [new Uint8Array(await viaGateway.arrayBuffer()), new Uint8Array(await direct.arrayBuffer())];
    expect(a.byteLength).toBe(b.byteLength);
    expect(sha256(a)).toBe(sha256(b));
    expect(new TextDecoder().decode(Bun.gunzipSync(a))).toStartWith("compressed hello");
    // and a client that decompresses gets the text
    expect(await (await fetch(gw.url + "/api/gzip", authed())).text()).toStartWith("compressed hello compressed hello");
  });

  test("several Set-Cookie headers all arrive, separately", async () => {
    const response = await fetch(gw.url + "/api/cookies", authed());
    expect(response.headers.getSetCookie()).toEqual(["a=1; Path=/; HttpOnly", "b=2; Path=/api; Secure", "c=3, with comma; Path=/"]);
  });

  test("a chunked binary body arrives byte-identical", async () => {
    const response = await fetch(gw.url + "/api/binary", authed());
    const bytes = new Uint8Array(await response.arrayBuffer());
    expect(bytes.byteLength).toBe(3 * 1024 * 1024);
    expect(sha256(bytes)).toBe(response.headers.get("x-sha256")!);
  });

  test("SSE events arrive one by one before the stream ends", async () => {
    // Bun's backend sends its response headers with the first event.
    backend.releaseSseEvent();
    const response = await fetch(gw.url + "/api/sse", authed());
    expect(response.headers.get("content-type")).toBe("text/event-stream");
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = "";
    for (let n = 1; n <= 3; n++) {
      // The backend sends event n only now: reading it proves it was not held back.
      if (n > 1) backend.releaseSseEvent();
      while (!buffered.includes(`data: event ${n}\n\n`)) {
        const { value, done } = await reader.read();
        expect(done).toBe(false);
        buffered += value;
      }
    }
    expect((await reader.read()).done).toBe(true);
    expect(buffered).toBe("id: 1\ndata: event 1\n\nid: 2\ndata: event 2\n\nid: 3\ndata: event 3\n\n");
  });
});

describe("backend failures", () => {
  test("a backend that never answers gets 504 after PROXY_TIMEOUT_MS", async () => {
    const response = await fetch(gw.url + "/api/hang", authed());
    expect(response.status).toBe(504);
    const text = await response.text();
    expect(JSON.parse(text)).toEqual({ error: "Backend did not answer in time" });
    expect(text).not.toContain("127.0.0.1");
  });

  test("the gateway keeps serving after failures", async () => {
    const response = await fetch(gw.url + "/api/ok", authed());
    expect(response.status).toBe(200);
  });
});

describe("a backend that is down", () => {
  let down: RunningGateway;
  let downDir: ReturnType<typeof tempDir>;
  beforeAll(async () => {
    downDir = tempDir();
    down = await startGateway({ BACKEND_API_URL: `http://127.0.0.1:${freePort()}/secret-prefix` }, downDir.path);
  });
  afterAll(async () => {
    await down.stop();
    downDir.remove();
  });

  test("gets 502 JSON that names neither the backend nor the token", async () => {
    const { cookie } = await signUp(down.url);
    const response = await fetch(down.url + "/api/items", { headers: { cookie } });
    expect(response.status).toBe(502);
    const text = await response.text();
    expect(JSON.parse(text)).toEqual({ error: "Backend unavailable" });
    expect(text).not.toContain("secret-prefix");
    const logged = down.logLines.join("\n");
    expect(logged).toContain("Backend unavailable");
    expect(logged).not.toContain("secret-prefix");
    expect(logged).not.toContain(cookie.split("=")[1]!.split(";")[0]!);
  });
});

describe("the gateway's own routes", () => {
  test("/healthz answers ok without auth", async () => {
    const response = await fetch(gw.url + "/healthz");
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: "ok" });
  });

  test("the Swagger spec lists Better Auth routes under /api/auth", async () => {
    const response = await fetch(gw.url + "/swagger/json");
    expect(response.status).toBe(200);
    const spec = (await response.json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(spec.openapi).toStartWith("3.1");
    expect(spec.paths["/api/auth/sign-in/email"]?.post).toBeDefined();
    expect(spec.paths["/api/auth/sign-up/email"]?.post).toBeDefined();
    expect(spec.paths["/api/auth/jwks"]?.get).toBeDefined();
    expect(Object.keys(spec.paths).filter((p) => !p.startsWith("/api/auth/") && p !== "/healthz")).toEqual([]);
  });

  test("the Swagger page is an HTML page pointing at the spec", async () => {
    const response = await fetch(gw.url + "/swagger");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/html");
    const html = await response.text();
    expect(html).toContain("SwaggerUIBundle");
    expect(html).toContain('"url":"swagger/json"');
    // Swagger UI comes from the gateway itself: the page works with no internet.
    expect(html).not.toMatch(/https?:\/\//);
    for (const [asset, type] of [
      ["/swagger/assets/swagger-ui-bundle.js", "text/javascript"],
      ["/swagger/assets/swagger-ui.css", "text/css"],
    ] as const) {
      expect(html).toContain(asset);
      const served = await fetch(gw.url + asset);
      expect(served.status).toBe(200);
      expect(served.headers.get("content-type")).toStartWith(type);
      expect((await served.arrayBuffer()).byteLength).toBeGreaterThan(100_000);
    }
  });

  test("an unknown non-API path is a JSON 404", async () => {
    const response = await fetch(gw.url + "/nothing-here");
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: "Not found" });
  });
});
