import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, renameSync, rmSync, statSync, symlinkSync, truncateSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { brotliCompressSync, brotliDecompressSync, gunzipSync } from "node:zlib";
import { Elysia } from "elysia";
import {
  createStaticFiles,
  entityTag,
  etagMatches,
  IMMUTABLE,
  isCompressible,
  isFingerprinted,
  notModified,
  parsePath,
  preferredEncodings,
  REVALIDATE,
  type Encoding,
  type StaticFiles,
} from "../src/static/serve";

// ---------------------------------------------------------------- fixture

const scratch = mkdtempSync(join(tmpdir(), "authgate-static-"));
const root = join(scratch, "root");
const outside = join(scratch, "outside");
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function put(path: string, content: string | Uint8Array): void {
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, content);
}

const INDEX = "<!doctype html><title>app</title>";
const HASHED = "export const answer = 42;\n".repeat(200);
const HASHED_BR = brotliCompressSync(HASHED);
const HASHED_GZ = Bun.gzipSync(HASHED);
const DIGITS = "0123456789";
const BIG = 64 * 1024 * 1024;

put(join(root, "index.html"), INDEX);
put(join(root, "robots.txt"), "User-agent: *\n");
put(join(root, "digits.txt"), DIGITS);
for (const name of ["app.js", "page.html", "style.css", "logo.svg", "mod.wasm", "data.json", "site.webmanifest", "app.js.map", "segment.ts", "photo.png", "file.gz"]) {
  put(join(root, "types", name), "x");
}
put(join(root, "assets", "index-BXa9Zk3c.js"), HASHED);
put(join(root, "assets", "index-BXa9Zk3c.js.br"), HASHED_BR);
put(join(root, "assets", "index-BXa9Zk3c.js.gz"), HASHED_GZ);
put(join(root, "assets", "only-gzip.js"), HASHED);
put(join(root, "assets", "only-gzip.js.gz"), HASHED_GZ);
put(join(root, "assets", "photo.png"), "png bytes");
put(join(root, "assets", "photo.png.gz"), Bun.gzipSync("png bytes"));
put(join(root, "docs", "index.html"), "<p>docs</p>");
mkdirSync(join(root, "empty"), { recursive: true });
put(join(root, "empty", "note.txt"), "a file a listing would show");
put(join(root, ".env"), "SECRET=1");
put(join(root, ".git", "config"), "[core]");
put(join(root, "a", ".hidden", "x"), "hidden");
put(join(root, "a", "visible.txt"), "visible");
put(join(root, ".well-known", "security.txt"), "Contact: mailto:security@example.com");
put(join(outside, "secret.txt"), "outside secret");
put(join(outside, "index.html"), "outside index");
symlinkSync(join(root, "robots.txt"), join(root, "link-inside.txt"));
symlinkSync(join(outside, "secret.txt"), join(root, "link-outside.txt"));
symlinkSync(outside, join(root, "linkdir"));
// Sparse: 64 MB on the wire, nothing on disk.
writeFileSync(join(root, "big.bin"), "");
truncateSync(join(root, "big.bin"), BIG);

/** The raw path of a request: from the first "/" after "://" up to "?". */
function rawPathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("://") + 3);
  const query = url.indexOf("?", start);
  return url.slice(start, query < 0 ? undefined : query);
}

function listen(files: StaticFiles): string {
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: (request) => files.serve(request, rawPathOf(request.url)) });
  afterAll(() => server.stop(true));
  return `http://127.0.0.1:${server.port}`;
}

const spa = createStaticFiles({ root, spa: true, wellKnown: true });
const base = listen(spa);
const plainBase = listen(createStaticFiles({ root, spa: false }));

/** Never decompressed, so the bytes are the ones sent; identity unless the test asks for more. */
function get(path: string, headers: Record<string, string> = {}, init: RequestInit = {}, at = base): Promise<Response> {
  return fetch(at + path, { ...init, headers: { "accept-encoding": "identity", ...headers }, decompress: false } as RequestInit);
}

async function bytes(response: Response): Promise<Buffer> {
  return Buffer.from(await response.arrayBuffer());
}

const direct = (path: string, headers: Record<string, string> = {}) => spa.serve(new Request("http://gateway.test/", { headers }), path);

// ---------------------------------------------------------------- pure functions

describe("isFingerprinted", () => {
  test.each([
    "index-BXa9Zk3c.js",
    "app.3f2a9c1b.css",
    "chunk-5d8e7f60.js",
    "main.a1b2c3d4e5f6.js",
    "framework-2c79e2a64abdb08b.js",
    "main.4f6b5e0e3a0c2d1b9a8c.js",
    "out-5XQUZ2RW.js",
    "vendor_x-A1b_C2d3.js",
    "index-BXa9Zk3c.js.map",
    "index-BXa9Zk3c.js.br",
    "app.3f2a9c1b.css.gz",
  ])("%s is fingerprinted", (name) => {
    expect(isFingerprinted(name)).toBe(true);
  });
  test.each([
    "jquery-3.js",
    "jquery-3.7.1.min.js",
    "favicon.ico",
    "robots.txt",
    "my-component.js",
    "my-long-component-v2.js",
    "logo-dark.svg",
    "index.html",
    "icon-HomePage.svg",
    "OpenSans-SemiBold.woff2",
    "photo-iPhone15Pro.jpg",
    "report-20240101.pdf",
    "polyfills-es2015.js",
    "index.production.js",
    "deadbeef-facade.js",
    "app-VERSIONS.js",
    "BXa9Zk3c",
    "index-BXa9Zk3c",
  ])("%s is not", (name) => {
    expect(isFingerprinted(name)).toBe(false);
  });
});

describe("preferredEncodings", () => {
  test.each<[string | null, Encoding[]]>([
    [null, []],
    ["", []],
    ["identity", []],
    ["gzip, deflate, br, zstd", ["br", "gzip"]],
    ["gzip", ["gzip"]],
    ["x-gzip", ["gzip"]],
    ["br", ["br"]],
    ["BR;Q=1, GZip", ["br", "gzip"]],
    ["br;q=0, gzip", ["gzip"]],
    ["br;q=0.000, gzip;q=0.5", ["gzip"]],
    ["gzip;q=0, br;q=0", []],
    ["gzip;q=1, br;q=0.5", ["gzip", "br"]],
    ["gzip;q=0.8, br;q=0.8", ["br", "gzip"]],
    ["*", ["br", "gzip"]],
    ["*;q=0", []],
    ["gzip, *;q=0", ["gzip"]],
    ["br;q=nonsense, gzip", ["gzip"]],
    ["br ; q = 0 , gzip", ["gzip"]],
  ])("%p → %p", (header, expected) => {
    expect(preferredEncodings(header)).toEqual(expected);
  });
});

describe("etagMatches (If-None-Match, weak comparison)", () => {
  const tag = '"a-18f"';
  test.each<[string, boolean]>([
    ['"a-18f"', true],
    ['W/"a-18f"', true],
    ["*", true],
    [" * ", true],
    ['"x", "a-18f"', true],
    ['"x",W/"a-18f" , "y"', true],
    ['"a-18f-br"', false],
    ['"x", "y"', false],
    ["a-18f", false],
    ['"a-18"', false],
    ["", false],
  ])("%s → %p", (header, expected) => {
    expect(etagMatches(header, tag)).toBe(expected);
  });
});

describe("notModified", () => {
  const mtimeMs = Date.UTC(2025, 0, 2, 3, 4, 5, 678);
  const tag = entityTag({ size: 10, mtimeMs });
  test.each<[string, string | null, string | null, boolean]>([
    ["no conditionals", null, null, false],
    ["matching If-None-Match", tag, null, true],
    ["If-None-Match decides over a later If-Modified-Since", '"other"', "Fri, 01 Jan 2100 00:00:00 GMT", false],
    ["If-Modified-Since at mtime's second", null, "Thu, 02 Jan 2025 03:04:05 GMT", true],
    ["If-Modified-Since after mtime", null, "Fri, 03 Jan 2025 00:00:00 GMT", true],
    ["If-Modified-Since a second before mtime", null, "Thu, 02 Jan 2025 03:04:04 GMT", false],
    ["unparsable If-Modified-Since", null, "yesterday", false],
  ])("%s", (_name, inm, ims, expected) => {
    expect(notModified(inm, ims, tag, mtimeMs)).toBe(expected);
  });

  test("entity tags differ per encoding and per size/mtime", () => {
    const tags = [entityTag({ size: 10, mtimeMs }), entityTag({ size: 10, mtimeMs }, "br"), entityTag({ size: 10, mtimeMs }, "gzip"), entityTag({ size: 11, mtimeMs }), entityTag({ size: 10, mtimeMs: mtimeMs + 1 })];
    expect(new Set(tags).size).toBe(tags.length);
    expect(tags[0]).toMatch(/^"[0-9a-f]+-[0-9a-f]+"$/);
  });
});

describe("parsePath", () => {
  test.each<[string, ReturnType<typeof parsePath>]>([
    ["/", { segments: [], directory: true }],
    ["/a/b.js", { segments: ["a", "b.js"], directory: false }],
    ["/a%20b/c%C3%A9.txt", { segments: ["a b", "cé.txt"], directory: false }],
    ["/docs/", { segments: ["docs"], directory: true }],
    ["//a//b", { segments: ["a", "b"], directory: false }],
    ["/a%2Fb", "bad"],
    ["/a%2fb", "bad"],
    ["/a%5Cb", "bad"],
    ["/a%5cb", "bad"],
    ["/a\\b", "bad"],
    ["/a%zz", "bad"],
    ["/a%4", "bad"],
    ["/a%00b", "bad"],
    ["a/b", "bad"],
    ["/.env", "hidden"],
    ["/a/.hidden/x", "hidden"],
    ["/%2eenv", "hidden"],
    ["/../secret", "hidden"],
    ["/a/./b", "hidden"],
    ["/%2e%2e/secret", "hidden"],
    ["/%2E%2e/secret", "hidden"],
  ])("%s", (raw, expected) => {
    expect(parsePath(raw)).toEqual(expected);
  });

  test.each([
    ["/.well-known/security.txt", true, { segments: [".well-known", "security.txt"], directory: false }],
    ["/.well-known/security.txt", false, "hidden"],
    ["/.well-known/.secret", true, "hidden"],
    ["/a/.well-known/x", true, "hidden"],
  ] as const)("%s with wellKnown %p", (raw, wellKnown, expected) => {
    expect(parsePath(raw, wellKnown)).toEqual(expected as never);
  });
});

describe("isCompressible", () => {
  test.each<[string, boolean]>([
    ["text/javascript;charset=utf-8", true],
    ["text/html;charset=utf-8", true],
    ["application/json;charset=utf-8", true],
    ["application/manifest+json", true],
    ["image/svg+xml", true],
    ["application/wasm", true],
    ["image/png", false],
    ["font/woff2", false],
    ["application/gzip", false],
    ["application/octet-stream", false],
  ])("%s → %p", (type, expected) => {
    expect(isCompressible(type)).toBe(expected);
  });
});

// ---------------------------------------------------------------- over HTTP

describe("content types", () => {
  test.each([
    ["app.js", "text/javascript;charset=utf-8"],
    ["page.html", "text/html;charset=utf-8"],
    ["style.css", "text/css;charset=utf-8"],
    ["logo.svg", "image/svg+xml"],
    ["mod.wasm", "application/wasm"],
    ["data.json", "application/json;charset=utf-8"],
    ["site.webmanifest", "application/manifest+json"],
    ["app.js.map", "application/json;charset=utf-8"],
    ["segment.ts", "video/mp2t"],
    ["photo.png", "image/png"],
    ["file.gz", "application/gzip"],
  ])("%s → %s, nosniff", async (name, type) => {
    const response = await get(`/types/${name}`, { "accept-encoding": "gzip, br" });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe(type);
    expect(response.headers.get("x-content-type-options")).toBe("nosniff");
    expect(response.headers.get("content-encoding")).toBeNull();
    expect(await response.text()).toBe("x");
  });
});

describe("validators and conditional requests", () => {
  test("ETag and Last-Modified come from the file's size and mtime", async () => {
    const stats = statSync(join(root, "digits.txt"));
    const response = await get("/digits.txt");
    expect(response.headers.get("etag")).toBe(entityTag(stats));
    expect(response.headers.get("last-modified")).toBe(new Date(stats.mtimeMs).toUTCString());
    expect(await response.text()).toBe(DIGITS);
  });

  test("a matching If-None-Match (in a list, weak) is a 304 with the cache headers and no body", async () => {
    const etag = (await get("/robots.txt")).headers.get("etag")!;
    const response = await get("/robots.txt", { "if-none-match": `"nope", W/${etag}` });
    expect(response.status).toBe(304);
    expect(response.headers.get("etag")).toBe(etag);
    expect(response.headers.get("cache-control")).toBe(REVALIDATE);
    expect(response.headers.get("vary")).toBe("Accept-Encoding");
    expect(response.headers.get("last-modified")).not.toBeNull();
    expect(await response.text()).toBe("");
    expect((await get("/robots.txt", { "if-none-match": "*" })).status).toBe(304);
    expect((await get("/robots.txt", { "if-none-match": '"nope"' })).status).toBe(200);
  });

  test("If-Modified-Since at or after the mtime is a 304; If-None-Match decides when both are sent", async () => {
    const lastModified = (await get("/robots.txt")).headers.get("last-modified")!;
    expect((await get("/robots.txt", { "if-modified-since": lastModified })).status).toBe(304);
    const earlier = new Date(Date.parse(lastModified) - 1000).toUTCString();
    expect((await get("/robots.txt", { "if-modified-since": earlier })).status).toBe(200);
    expect((await get("/robots.txt", { "if-modified-since": lastModified, "if-none-match": '"nope"' })).status).toBe(200);
  });

  test("a file touched since is a 200 with a new ETag", async () => {
    const path = join(root, "touched.txt");
    put(path, "same size");
    utimesSync(path, new Date("2024-01-01T00:00:00Z"), new Date("2024-01-01T00:00:00Z"));
    const before = await get("/touched.txt");
    const etag = before.headers.get("etag")!;
    const lastModified = before.headers.get("last-modified")!;
    expect(lastModified).toBe("Mon, 01 Jan 2024 00:00:00 GMT");
    expect((await get("/touched.txt", { "if-none-match": etag })).status).toBe(304);

    utimesSync(path, new Date("2024-06-01T00:00:00Z"), new Date("2024-06-01T00:00:00Z"));
    const byTag = await get("/touched.txt", { "if-none-match": etag });
    expect(byTag.status).toBe(200);
    expect(byTag.headers.get("etag")).not.toBe(etag);
    expect(await byTag.text()).toBe("same size");
    expect((await get("/touched.txt", { "if-modified-since": lastModified })).status).toBe(200);
  });
});

describe("ranges (Bun's own handling, pinned)", () => {
  test.each<[string, number, string, string]>([
    ["bytes=2-4", 206, "bytes 2-4/10", "234"],
    ["bytes=7-", 206, "bytes 7-9/10", "789"],
    ["bytes=-3", 206, "bytes 7-9/10", "789"],
    ["bytes=5-100", 206, "bytes 5-9/10", "56789"],
  ])("%s → %d %s", async (range, status, contentRange, body) => {
    const response = await get("/digits.txt", { range });
    expect(response.status).toBe(status);
    expect(response.headers.get("content-range")).toBe(contentRange);
    expect(response.headers.get("accept-ranges")).toBe("bytes");
    expect(response.headers.get("content-length")).toBe(String(body.length));
    expect(await response.text()).toBe(body);
  });

  test.each(["bytes=10-", "bytes=20-30", "bytes=-0"])("%s is a 416 with Content-Range: bytes */10", async (range) => {
    const response = await get("/digits.txt", { range });
    expect(response.status).toBe(416);
    expect(response.headers.get("content-range")).toBe("bytes */10");
    expect(await response.text()).toBe("");
  });

  test.each(["bytes=0-1,4-5", "bytes=5-2", "items=0-1"])("%s gets the whole file", async (range) => {
    const response = await get("/digits.txt", { range });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-range")).toBeNull();
    expect(await response.text()).toBe(DIGITS);
  });

  test("If-Range: the current ETag or date gives the range, anything else the whole file", async () => {
    const first = await get("/digits.txt");
    const etag = first.headers.get("etag")!;
    const lastModified = first.headers.get("last-modified")!;
    expect(first.headers.get("accept-ranges")).toBe("bytes");
    for (const validator of [etag, lastModified]) {
      const response = await get("/digits.txt", { range: "bytes=2-4", "if-range": validator });
      expect(response.status).toBe(206);
      expect(await response.text()).toBe("234");
    }
    for (const validator of ['"stale"', `W/${etag}`, "Mon, 01 Jan 2024 00:00:00 GMT"]) {
      const response = await get("/digits.txt", { range: "bytes=2-4", "if-range": validator });
      expect(response.status).toBe(200);
      expect(await response.text()).toBe(DIGITS);
    }
  });

  test("a matching If-None-Match wins over Range", async () => {
    const etag = (await get("/digits.txt")).headers.get("etag")!;
    expect((await get("/digits.txt", { range: "bytes=2-4", "if-none-match": etag })).status).toBe(304);
  });
});

describe("methods", () => {
  test("HEAD has the GET's headers, Content-Length included, and no body", async () => {
    const getResponse = await get("/digits.txt");
    const head = await get("/digits.txt", {}, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe("10");
    for (const name of ["content-type", "etag", "last-modified", "cache-control", "vary", "accept-ranges"]) {
      expect(head.headers.get(name)).toBe(getResponse.headers.get(name));
    }
    expect(await head.text()).toBe("");
  });

  test("HEAD of a precompressed file has the sibling's length", async () => {
    const head = await get("/assets/index-BXa9Zk3c.js", { "accept-encoding": "br" }, { method: "HEAD" });
    expect(head.headers.get("content-encoding")).toBe("br");
    expect(head.headers.get("content-length")).toBe(String(HASHED_BR.length));
  });

  test.each(["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])("%s is a 405 with Allow", async (method) => {
    const response = await get("/digits.txt", {}, { method });
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("GET, HEAD");
    expect(response.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(await response.json()).toEqual({ error: "Method not allowed" });
  });
});

describe("Cache-Control", () => {
  test.each([
    ["/assets/index-BXa9Zk3c.js", IMMUTABLE],
    ["/assets/only-gzip.js", REVALIDATE],
    ["/index.html", REVALIDATE],
    ["/", REVALIDATE],
    ["/robots.txt", REVALIDATE],
  ])("%s → %s", async (path, cacheControl) => {
    const response = await get(path);
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe(cacheControl);
  });
});

describe("precompressed siblings", () => {
  const identityTag = () => entityTag(statSync(join(root, "assets", "index-BXa9Zk3c.js")));

  test.each<[string, string | null, Uint8Array]>([
    ["gzip, deflate, br, zstd", "br", HASHED_BR],
    ["br", "br", HASHED_BR],
    ["gzip", "gzip", HASHED_GZ],
    ["br;q=0, gzip", "gzip", HASHED_GZ],
    ["gzip;q=1, br;q=0.5", "gzip", HASHED_GZ],
    ["gzip;q=0, br;q=0", null, Buffer.from(HASHED)],
    ["identity", null, Buffer.from(HASHED)],
  ])("Accept-Encoding: %s → %p", async (acceptEncoding, encoding, expected) => {
    const response = await get("/assets/index-BXa9Zk3c.js", { "accept-encoding": acceptEncoding });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-encoding")).toBe(encoding);
    expect(response.headers.get("content-type")).toBe("text/javascript;charset=utf-8");
    expect(response.headers.get("vary")).toBe("Accept-Encoding");
    expect(response.headers.get("cache-control")).toBe(IMMUTABLE);
    expect(response.headers.get("content-length")).toBe(String(expected.length));
    const etag = response.headers.get("etag");
    if (encoding === null) expect(etag).toBe(identityTag());
    else expect(etag).not.toBe(identityTag());
    const received = await bytes(response);
    expect(received).toEqual(Buffer.from(expected));
    const decoded = encoding === "br" ? brotliDecompressSync(received) : encoding === "gzip" ? gunzipSync(received) : received;
    expect(decoded.toString()).toBe(HASHED);
  });

  test("br is skipped where only gzip exists", async () => {
    const response = await get("/assets/only-gzip.js", { "accept-encoding": "br, gzip" });
    expect(response.headers.get("content-encoding")).toBe("gzip");
    expect(await bytes(response)).toEqual(Buffer.from(HASHED_GZ));
  });

  test("a 304 for the compressed variant takes its own ETag, not the identity one", async () => {
    const br = (await get("/assets/index-BXa9Zk3c.js", { "accept-encoding": "br" })).headers.get("etag")!;
    expect((await get("/assets/index-BXa9Zk3c.js", { "accept-encoding": "br", "if-none-match": br })).status).toBe(304);
    const stale = await get("/assets/index-BXa9Zk3c.js", { "accept-encoding": "br", "if-none-match": identityTag() });
    expect(stale.status).toBe(200);
    const vary = await get("/assets/index-BXa9Zk3c.js", { "accept-encoding": "br", "if-none-match": br });
    expect(vary.headers.get("vary")).toBe("Accept-Encoding");
  });

  test("Range applies to the file itself, not a compressed sibling, under the identity ETag", async () => {
    const response = await get("/assets/index-BXa9Zk3c.js", { "accept-encoding": "gzip, br", range: "bytes=0-9" });
    expect(response.status).toBe(206);
    expect(response.headers.get("content-encoding")).toBeNull();
    expect(response.headers.get("content-range")).toBe(`bytes 0-9/${HASHED.length}`);
    expect(response.headers.get("etag")).toBe(identityTag());
    expect(response.headers.get("vary")).toBe("Accept-Encoding");
    expect((await bytes(response)).toString()).toBe(HASHED.slice(0, 10));
  });

  test("a fetch that decompresses reads the original text", async () => {
    const response = await fetch(base + "/assets/index-BXa9Zk3c.js", { headers: { "accept-encoding": "gzip" } });
    expect(await response.text()).toBe(HASHED);
  });

  test("a .gz asked for by name is served as it is", async () => {
    const response = await get("/assets/index-BXa9Zk3c.js.gz", { "accept-encoding": "gzip, br" });
    expect(response.headers.get("content-type")).toBe("application/gzip");
    expect(response.headers.get("content-encoding")).toBeNull();
    expect(await bytes(response)).toEqual(Buffer.from(HASHED_GZ));
  });

  test("an already-compressed type is not looked up for siblings", async () => {
    const response = await get("/assets/photo.png", { "accept-encoding": "gzip" });
    expect(response.headers.get("content-encoding")).toBeNull();
    expect(await response.text()).toBe("png bytes");
  });
});

describe("single-page app fallback", () => {
  const html = { accept: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8" };

  test.each(["/dashboard", "/users/42/settings", "/docs/missing/"])("a navigation to %s gets index.html, no-cache", async (path) => {
    const response = await get(path, html);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/html;charset=utf-8");
    expect(response.headers.get("cache-control")).toBe(REVALIDATE);
    expect(response.headers.get("vary")).toBe("Accept-Encoding, Accept");
    expect(await response.text()).toBe(INDEX);
  });

  test.each<[string, Record<string, string>, string]>([
    ["a missing asset", html, "/assets/x.js"],
    ["a JSON client", { accept: "application/json" }, "/dashboard"],
    ["no Accept", {}, "/dashboard"],
    ["a dotfile", html, "/.env"],
  ])("%s is still a 404", async (_name, headers, path) => {
    const response = await get(path, headers);
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: "Not found" });
  });

  test("the 404 that Accept decided says so in Vary", async () => {
    expect((await get("/dashboard", { accept: "application/json" })).headers.get("vary")).toBe("Accept");
  });

  test("with spa false a navigation is a 404", async () => {
    const response = await get("/dashboard", html, {}, plainBase);
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: "Not found" });
  });
});

describe("directories", () => {
  test.each(["/docs", "/docs/"])("%s serves docs/index.html", async (path) => {
    const response = await get(path, {}, {}, plainBase);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/html;charset=utf-8");
    expect(await response.text()).toBe("<p>docs</p>");
  });

  test("/ serves the root's index.html", async () => {
    expect(await (await get("/", {}, {}, plainBase)).text()).toBe(INDEX);
  });

  test.each(["/empty", "/empty/"])("%s, without index.html, is a 404 and no listing", async (path) => {
    const response = await get(path, {}, {}, plainBase);
    expect(response.status).toBe(404);
    expect(await response.text()).toBe(JSON.stringify({ error: "Not found" }));
  });

  test("a file asked for as a directory is a 404", async () => {
    expect((await get("/robots.txt/", {}, {}, plainBase)).status).toBe(404);
  });
});

describe("what is never served", () => {
  test.each(["/.env", "/.git/config", "/a/.hidden/x", "/%2eenv", "/.git/"])("%s is a 404", async (path) => {
    const response = await get(path, { accept: "text/html" });
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: "Not found" });
  });

  test("/.well-known/ (RFC 8615) is the one dot-directory served, where it is asked for", async () => {
    const response = await get("/.well-known/security.txt");
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("Contact: mailto:security@example.com");
    // Not a client-side route: a missing ACME token is a 404 even for a browser.
    expect((await get("/.well-known/acme-challenge/token", { accept: "text/html" })).status).toBe(404);
    // A route under a prefix (wellKnown off) does not serve it.
    expect((await get("/.well-known/security.txt", {}, {}, plainBase)).status).toBe(404);
  });

  test("a visible file beside a hidden directory is served", async () => {
    expect(await (await get("/a/visible.txt")).text()).toBe("visible");
  });

  test.each(["/link-outside.txt", "/linkdir/secret.txt", "/linkdir/", "/linkdir"])("%s, through a symlink out of the root, is a 404", async (path) => {
    const response = await get(path, {}, {}, plainBase);
    expect(response.status).toBe(404);
    expect(await response.text()).not.toContain("outside");
  });

  test("a symlink to a file inside the root is served", async () => {
    const response = await get("/link-inside.txt");
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("User-agent: *\n");
  });

  test("a precompressed sibling linked out of the root is not served", async () => {
    put(join(root, "escape.js"), "plain");
    put(join(outside, "escape.js.gz"), Bun.gzipSync("outside"));
    symlinkSync(join(outside, "escape.js.gz"), join(root, "escape.js.gz"));
    const response = await get("/escape.js", { "accept-encoding": "gzip" });
    expect(response.headers.get("content-encoding")).toBeNull();
    expect(await response.text()).toBe("plain");
  });

  test.each(["/a%2Fvisible.txt", "/a%2fvisible.txt", "/a%5Cvisible.txt", "/a%5cvisible.txt", "/bad%zz", "/nul%00.txt"])("%s is a 400", async (path) => {
    const response = await get(path);
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ error: "Bad request path" });
  });

  // Bun turns a literal "\" into "/" before request.url, so this is asked directly.
  test("a literal backslash is a 400", async () => {
    const response = await direct("/a\\visible.txt");
    expect(response.status).toBe(400);
  });

  test.each(["/../outside/secret.txt", "/%2e%2e/outside/secret.txt", "/%2E%2e/outside/secret.txt", "/docs/../../outside/secret.txt", "/..", "/assets/..%2f..%2foutside/secret.txt"])(
    "serve() on its own refuses %s",
    async (path) => {
      const response = await direct(path);
      expect([400, 404]).toContain(response.status);
      expect(await response.text()).not.toContain("secret");
    },
  );

  test("a missing file is a JSON 404", async () => {
    const response = await get("/nope.txt");
    expect(response.status).toBe(404);
    expect(response.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(await response.json()).toEqual({ error: "Not found" });
  });
});

describe("the root", () => {
  test("a root that is a symlink swapped by a deploy is followed", async () => {
    const releases = join(scratch, "releases");
    put(join(releases, "1", "version.txt"), "one");
    put(join(releases, "2", "version.txt"), "two");
    const current = join(scratch, "current");
    symlinkSync(join(releases, "1"), current);
    const files = createStaticFiles({ root: current, spa: false });
    const read = async () => (await files.serve(new Request("http://gateway.test/"), "/version.txt")).text();
    expect(await read()).toBe("one");
    symlinkSync(join(releases, "2"), current + ".next");
    renameSync(current + ".next", current);
    expect(await read()).toBe("two");
  });

  test("a root that does not exist answers 404", async () => {
    const files = createStaticFiles({ root: join(scratch, "missing"), spa: true });
    expect((await files.serve(new Request("http://gateway.test/", { headers: { accept: "text/html" } }), "/")).status).toBe(404);
  });
});

describe("streaming", () => {
  test("a 64 MB file is streamed: the process grows far less than the file", async () => {
    Bun.gc(true);
    const before = process.memoryUsage().rss;
    const response = await get("/big.bin");
    expect(response.headers.get("content-length")).toBe(String(BIG));
    const reader = response.body!.getReader();
    let received = 0;
    let peak = before;
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
      received += chunk.value.byteLength;
      // Every 4 MB: the peak, after collecting the chunks already read, so that what is
      // measured is memory held, not garbage the collector has not come to yet.
      if ((received & 0x3fffff) < chunk.value.byteLength) {
        Bun.gc(false);
        peak = Math.max(peak, process.memoryUsage().rss);
      }
    }
    peak = Math.max(peak, process.memoryUsage().rss);
    expect(received).toBe(BIG);
    expect(peak - before).toBeLessThan(32 * 1024 * 1024);
  });
});

describe("through Elysia", () => {
  const app = new Elysia().get("/*", ({ request }) => spa.serve(request, rawPathOf(request.url)));
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: app.fetch });
  afterAll(() => server.stop(true));
  const at = `http://127.0.0.1:${server.port}`;

  test("the Response passes untouched: Range, 304, HEAD, precompressed", async () => {
    const range = await get("/digits.txt", { range: "bytes=2-4" }, {}, at);
    expect(range.status).toBe(206);
    expect(await range.text()).toBe("234");
    const etag = range.headers.get("etag")!;
    expect((await get("/digits.txt", { "if-none-match": etag }, {}, at)).status).toBe(304);
    const head = await get("/digits.txt", {}, { method: "HEAD" }, at);
    expect(head.headers.get("content-length")).toBe("10");
    expect(await head.text()).toBe("");
    const br = await get("/assets/index-BXa9Zk3c.js", { "accept-encoding": "br" }, {}, at);
    expect(br.headers.get("content-encoding")).toBe("br");
    expect(await bytes(br)).toEqual(Buffer.from(HASHED_BR));
  });
});
