/**
 * The files of a `kind: "static"` route, served the way a CDN would: streamed from disk,
 * with validators, conditional requests, ranges, precompressed siblings and cache rules
 * that follow the file's name.
 *
 * What Bun.serve does by itself for a `new Response(Bun.file(path))` with status 200
 * (measured on Bun 1.4.5, and pinned by tests/static.test.ts): it sends the file with
 * sendfile, sets Content-Length (also on HEAD, with no body), and answers a single GET
 * `Range` with 206 + Content-Range + Accept-Ranges, an unsatisfiable one with a 416 whose
 * Content-Range gives the size, and several ranges or a malformed one with the whole file.
 * It evaluates `If-Range` against the Response's own ETag and Last-Modified headers, with
 * the strong comparison RFC 9110 asks for. It ignores Range on HEAD and on any status but
 * 200, leaves Content-Encoding and Content-Length of a compressed file alone and never
 * compresses. It does nothing with If-None-Match or If-Modified-Since and sets neither ETag
 * nor Last-Modified: those, the cache rules, the encodings and the path checks are what this
 * module adds.
 */
import { realpathSync, statSync, type Stats } from "node:fs";
import { jsonError } from "../errors";

export interface StaticOptions {
  /** Absolute directory the files are served from. */
  root: string;
  /** A GET/HEAD for a client-side route (no file, no extension, accepts HTML) gets index.html. */
  spa: boolean;
  /**
   * Serve `/.well-known/` (RFC 8615): only for a route at the origin's root, where clients
   * look for it. Other dot-directories are never served. @default false
   */
  wellKnown?: boolean;
}

export interface StaticFiles {
  /**
   * `path` is the request path relative to the route's prefix, raw (still percent-encoded,
   * as the client sent it), always starting with "/" ("/" for the route root).
   */
  serve(request: Request, path: string): Promise<Response>;
}

export type Encoding = "br" | "gzip";

export const IMMUTABLE = "public, max-age=31536000, immutable";
export const REVALIDATE = "no-cache";

export function createStaticFiles(options: StaticOptions): StaticFiles {
  const root = options.root.replace(/\/+$/, "");
  let realRoot: string | undefined;

  /**
   * Whether a resolved path lies inside the root. The root's own real path is cached; when a
   * path falls outside it, the root is resolved again before refusing, so a root that is a
   * symlink swapped by a deploy (`current -> releases/42`) is followed without a restart.
   */
  function insideRoot(real: string): boolean {
    if (realRoot !== undefined && isInside(real, realRoot)) return true;
    realRoot = realPathOf(root);
    return realRoot !== undefined && isInside(real, realRoot);
  }

  /** The regular file at `path` (a directory's index.html), once its real path is known to be inside the root. */
  function find(path: string, directory: boolean): Found | undefined {
    let stats = statOf(path);
    let name = path.slice(path.lastIndexOf("/") + 1);
    if (stats?.isDirectory()) {
      path += "/index.html";
      name = "index.html";
      stats = statOf(path);
    } else if (directory) {
      // `/app.js/` names a directory, as the file system reads it.
      return undefined;
    }
    if (!stats?.isFile()) return undefined;
    const real = realPathOf(path);
    if (real === undefined || !insideRoot(real)) return undefined;
    return { path, real, name, stats };
  }

  /** The br/gzip sibling of `file` the client takes, if there is one. */
  function findVariant(file: Found, type: string, acceptEncoding: string | null): Variant | undefined {
    if (!acceptEncoding || !isCompressible(type)) return undefined;
    for (const encoding of preferredEncodings(acceptEncoding)) {
      const path = file.path + (encoding === "br" ? ".br" : ".gz");
      const stats = statOf(path);
      if (!stats?.isFile()) continue;
      const real = realPathOf(path);
      if (real !== undefined && insideRoot(real)) return { encoding, real, stats };
    }
    return undefined;
  }

  function respond(request: Request, file: Found, cacheControl: string, vary: string): Response {
    const type = contentTypeOf(file.name);
    // A range is of the file itself: resumed downloads and media players (and fetch, which
    // would try to inflate a slice of gzip) expect identity bytes, whatever they accept.
    const variant = request.headers.has("range") ? undefined : findVariant(file, type, request.headers.get("accept-encoding"));
    const stats = variant?.stats ?? file.stats;
    const etag = entityTag(stats, variant?.encoding);
    const lastModified = new Date(stats.mtimeMs).toUTCString();
    const validators = { etag, "last-modified": lastModified, "cache-control": cacheControl, vary };
    if (notModified(request.headers.get("if-none-match"), request.headers.get("if-modified-since"), etag, stats.mtimeMs)) {
      return new Response(null, { status: 304, headers: validators });
    }
    const headers: Record<string, string> = {
      ...validators,
      "content-type": type,
      "x-content-type-options": "nosniff",
    };
    if (variant) headers["content-encoding"] = variant.encoding;
    // Bun adds Accept-Ranges itself to the 206/416 it makes of a GET with Range; set here too
    // it would be sent twice ("bytes, bytes").
    if (request.method !== "GET" || !request.headers.has("range")) headers["accept-ranges"] = "bytes";
    return new Response(Bun.file(variant?.real ?? file.real), { headers });
  }

  return {
    async serve(request, rawPath) {
      if (request.method !== "GET" && request.method !== "HEAD") {
        const response = jsonError(405, "Method not allowed");
        response.headers.set("allow", "GET, HEAD");
        return response;
      }
      const parsed = parsePath(rawPath, options.wellKnown === true);
      if (parsed === "bad") return jsonError(400, "Bad request path");
      if (parsed === "hidden") return jsonError(404, "Not found");

      const file = find(root + parsed.segments.map((segment) => "/" + segment).join("") || "/", parsed.directory);
      if (file) return respond(request, file, isFingerprinted(file.name) ? IMMUTABLE : REVALIDATE, "Accept-Encoding");

      // A client-side route: what answers depends on Accept, which caches must know.
      const last = parsed.segments.at(-1) ?? "";
      // Nothing under /.well-known/ is a client-side route: a missing ACME token is a 404.
      if (options.spa && !last.includes(".") && parsed.segments[0] !== ".well-known") {
        const index = /text\/html/i.test(request.headers.get("accept") ?? "") ? find(root + "/index.html", false) : undefined;
        if (index) return respond(request, index, REVALIDATE, "Accept-Encoding, Accept");
        const response = jsonError(404, "Not found");
        response.headers.set("vary", "Accept");
        return response;
      }
      return jsonError(404, "Not found");
    },
  };
}

interface Found {
  /** Under the configured root, as requested (the sibling files sit next to it). */
  path: string;
  /** Its real path, inside the real root: what is opened. */
  real: string;
  /** The requested name: its extension gives the type, its hash the cache rule. */
  name: string;
  stats: Stats;
}

interface Variant {
  encoding: Encoding;
  real: string;
  stats: Stats;
}

export type ParsedPath = { segments: string[]; directory: boolean } | "bad" | "hidden";

/**
 * Splits a raw path into decoded segments. "bad" (a 400) for what cannot name a file: invalid
 * percent-encoding, NUL, a backslash or an encoded slash, which would otherwise become a
 * separator after decoding. "hidden" (a 404) for any segment starting with a dot (but a
 * first segment `.well-known` when `wellKnown`): dotfiles, and `.`/`..` in any spelling, so nothing here can
 * climb out of the root even though the gateway refused dot segments already. Empty segments
 * (`//`) are dropped.
 */
export function parsePath(rawPath: string, wellKnown = false): ParsedPath {
  if (!rawPath.startsWith("/")) return "bad";
  const segments: string[] = [];
  for (const raw of rawPath.slice(1).split("/")) {
    if (raw === "") continue;
    let segment: string;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      return "bad";
    }
    if (/[/\\\0]/.test(segment)) return "bad";
    // RFC 8615's /.well-known/ (security.txt, app links, ACME) is meant to be served; its own
    // contents' dotfiles are not.
    if (segment.startsWith(".") && !(wellKnown && segment === ".well-known" && segments.length === 0)) return "hidden";
    segments.push(segment);
  }
  return { segments, directory: rawPath.endsWith("/") };
}

/**
 * Whether a file name carries a content hash, as bundlers emit them: `index-BXa9Zk3c.js`
 * (Rollup/Vite: 8 base64url characters), `app.3f2a9c1b.css`, `chunk-5d8e7f60.js`,
 * `main.a1b2c3d4e5f6.js` (webpack, Angular, Next.js: hex of any common length),
 * `out-5XQUZ2RW.js` (esbuild: 8 base32 characters); also their `.map`, `.br` and `.gz`.
 * Such a name changes with its content, so it may be cached for a year.
 *
 * A false positive pins a stale file in browsers for that year with no way to recall it; a
 * false negative only costs a revalidation. So the hash is the last `-`/`.`-separated part
 * before the extension and must look random for its kind: hex with both a digit and a
 * letter; 8 characters with a digit and both cases; 8 base32 characters with a digit. That
 * leaves `my-component.js`, `logo-dark.svg`, `jquery-3.7.1.js`, `OpenSans-SemiBold.woff2`,
 * `photo-iPhone15Pro.jpg` or `report-20240101.pdf` alone, at the price of missing the Rollup
 * hashes that happen to hold no digit or a `-` (about a third of them).
 */
export function isFingerprinted(name: string): boolean {
  const base = name.replace(/(\.(map|br|gz))+$/, "");
  const extension = /\.[A-Za-z0-9]+$/.exec(base);
  if (!extension) return false;
  const hash = /[.-]([A-Za-z0-9_]{8,64})$/.exec(base.slice(0, extension.index))?.[1];
  if (hash === undefined || !/[0-9]/.test(hash)) return false;
  if (/^[0-9a-f]+$/.test(hash)) return /[a-f]/.test(hash);
  if (hash.length !== 8) return false;
  return (/[a-z]/.test(hash) && /[A-Z]/.test(hash)) || /^[A-Z2-7]+$/.test(hash);
}

/**
 * The precompressed encodings the client accepts, best first: by its q-values, br before
 * gzip when they tie. `q=0` (also through `*;q=0`) refuses; `x-gzip` is gzip (RFC 9110
 * §8.4.1.3); a q-value that does not parse refuses too, as the safe reading.
 */
export function preferredEncodings(acceptEncoding: string | null): Encoding[] {
  if (!acceptEncoding) return [];
  const q = new Map<string, number>();
  for (const entry of acceptEncoding.toLowerCase().split(",")) {
    const [coding = "", ...params] = entry.split(";").map((part) => part.trim());
    if (coding === "") continue;
    let weight = 1;
    for (const param of params) {
      const value = /^q\s*=\s*(.*)$/.exec(param)?.[1];
      if (value !== undefined) weight = /^(0(\.\d{0,3})?|1(\.0{0,3})?)$/.test(value) ? Number(value) : 0;
    }
    q.set(coding === "x-gzip" ? "gzip" : coding, weight);
  }
  const weightOf = (coding: Encoding) => q.get(coding) ?? q.get("*") ?? 0;
  return (["br", "gzip"] as const).filter((coding) => weightOf(coding) > 0).sort((a, b) => weightOf(b) - weightOf(a));
}

/**
 * Strong, from size and mtime (as nginx does), so If-Range can use it: Bun compares If-Range
 * strongly, as RFC 9110 requires, and a weak tag would never resume a download. A compressed
 * variant is another representation and gets its own tag (its own size and mtime, and its
 * encoding to be sure).
 */
export function entityTag(stats: Pick<Stats, "size" | "mtimeMs">, encoding?: Encoding): string {
  const tag = `${stats.size.toString(16)}-${Math.trunc(stats.mtimeMs).toString(16)}`;
  return `"${encoding ? `${tag}-${encoding}` : tag}"`;
}

/** If-None-Match's weak comparison: `*`, or any listed tag equal to `etag` once `W/` is dropped. */
export function etagMatches(ifNoneMatch: string, etag: string): boolean {
  if (ifNoneMatch.trim() === "*") return true;
  const opaque = etag.replace(/^W\//, "");
  for (const [tag] of ifNoneMatch.matchAll(/(?:W\/)?"[^"]*"/g)) {
    if (tag.replace(/^W\//, "") === opaque) return true;
  }
  return false;
}

/**
 * RFC 9110 §13.2.2: If-None-Match decides when present; otherwise If-Modified-Since, which
 * holds when the file is not newer than the date, in the seconds an HTTP date has.
 */
export function notModified(ifNoneMatch: string | null, ifModifiedSince: string | null, etag: string, mtimeMs: number): boolean {
  if (ifNoneMatch !== null) return etagMatches(ifNoneMatch, etag);
  if (ifModifiedSince === null) return false;
  const since = Date.parse(ifModifiedSince);
  return !Number.isNaN(since) && Math.floor(mtimeMs / 1000) <= Math.floor(since / 1000);
}

/**
 * Bun's type for the extension, which is right for the web's formats (js, mjs, css, html,
 * svg, wasm, json, map, webmanifest, fonts, images). Bun types `.ts` as JavaScript, a Bun
 * source; a static directory's `.ts` is an MPEG transport stream (HLS segments).
 */
function contentTypeOf(name: string): string {
  if (name.endsWith(".ts")) return "video/mp2t";
  return Bun.file(name).type;
}

/** Types worth a precompressed sibling; others (images, video, woff2, archives) are compressed already, so no look-up is spent. */
export function isCompressible(type: string): boolean {
  return /^text\/|[/+](json|xml|javascript)\b|^application\/wasm|^image\/(svg\+xml|x-icon|bmp)|^font\/(ttf|otf)/.test(type);
}

function isInside(real: string, realRoot: string): boolean {
  return real === realRoot || real.startsWith(realRoot.endsWith("/") ? realRoot : realRoot + "/");
}

// The look-ups are synchronous on purpose: they are metadata the kernel answers from its
// caches in a few microseconds, while a hop to the thread pool (fs/promises) costs about ten
// times that. The bytes, the part that can take long, are sent by Bun with sendfile.

/** What stands at `path`, following symlinks, or undefined when nothing usable does. */
function statOf(path: string): Stats | undefined {
  try {
    return statSync(path, { throwIfNoEntry: false });
  } catch (error) {
    if (isAbsence(error)) return undefined;
    throw error;
  }
}

function realPathOf(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch (error) {
    if (isAbsence(error)) return undefined;
    throw error;
  }
}

/** Errors that mean "no such file here" (a file used as a directory, a loop, no permission); anything else is a real failure. */
function isAbsence(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return code === "ENOENT" || code === "ENOTDIR" || code === "ENAMETOOLONG" || code === "ELOOP" || code === "EACCES" || code === "EPERM";
}
