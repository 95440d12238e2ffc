import { AUTH_BASE_PATH } from "../auth/paths";
import { RESERVED_PATHS, RESERVED_PREFIXES, type Route } from "./table";

/**
 * Route matching: which route (or the gateway itself) answers a path. Pure; each rule is a row
 * in tests/route-match.test.ts.
 *
 * A route's `path` is a prefix on segment boundaries (`/api` matches `/api`, `/api/` and
 * `/api/x`, not `/apix`); the longest one wins. Lookups walk the request path's own segment
 * boundaries against a Map of the table's paths, so their cost grows with the path's depth
 * (at most 33 segments reach here), never with the size of the table.
 *
 * Paths are compared as a backend would read them, so that no spelling reaches a route's
 * upstream past a longer route's rules: percent-encoded printable characters are decoded
 * (`/api/%61dmin` is `/api/admin`, `/api/%24batch` is `/api/$batch`), except the separators
 * and `%`, `?`, `#`. Then the same path as lenient backends read it: case-insensitively
 * (Express, ASP.NET), without `;parameters` (Tomcat, Jetty, Spring), without trailing dots
 * (IIS), with an encoded slash or backslash as a separator (servers that decode before
 * routing). A path that this reading puts under another route than the exact one
 * (`/api/ADMIN`, `/api/admin;x`, `/api/admin.`, `/api%2Fadmin`) is refused as ambiguous
 * rather than guessed at.
 */

export type Match<T> =
  /** Answered by the gateway itself: Better Auth, the docs, health, readiness, metrics. */
  | { readonly kind: "gateway" }
  /** The route as prepared, and the request path after its prefix, raw, starting with "/". */
  | { readonly kind: "route"; readonly route: T; readonly rest: string }
  /** No route: 404. */
  | { readonly kind: "none" }
  /** A lenient backend would read the path as another route's (see above): 400. */
  | { readonly kind: "ambiguous" };

const GATEWAY_PATHS = new Set(RESERVED_PATHS);
// Better Auth answers everything under its base path; the other reserved paths are exact.
const GATEWAY_PREFIXES = [`${AUTH_BASE_PATH}/`, ...RESERVED_PREFIXES];

/**
 * Whether the gateway answers this path itself, whatever the table says (RESERVED_PATHS,
 * RESERVED_PREFIXES, and the sign-in pages' PAGES_PATH with everything under it).
 */
export function isGatewayPath(path: string, pagesPath?: string): boolean {
  if (GATEWAY_PATHS.has(path)) return true;
  for (const prefix of GATEWAY_PREFIXES) if (path.startsWith(prefix)) return true;
  return pagesPath !== undefined && (path === pagesPath || (path.startsWith(pagesPath) && path[pagesPath.length] === "/"));
}

export interface RouteTable<T> {
  readonly routes: readonly Route[];
  /** `path` is request.url's raw path (no query). */
  match(path: string): Match<T>;
}

const NONE = Object.freeze({ kind: "none" as const });
const GATEWAY = Object.freeze({ kind: "gateway" as const });
const AMBIGUOUS = Object.freeze({ kind: "ambiguous" as const });

interface Entry<T> {
  prepared: T;
  segments: number;
}

/** The table's matcher; `prepare` runs once per route (its upstream base, its static files). */
export function compileTable<T>(routes: readonly Route[], prepare: (route: Route) => T, pagesPath?: string): RouteTable<T> {
  const byPath = new Map<string, Entry<T>>();
  // The same entries by lower-cased path, for the lenient reading (the config refuses two
  // paths that differ only in case).
  const byLowerPath = new Map<string, Entry<T>>();
  for (const route of routes) {
    const entry = { prepared: prepare(route), segments: segmentCount(route.path) };
    byPath.set(route.path, entry);
    byLowerPath.set(route.path.toLowerCase(), entry);
  }
  // With a capital letter in a route's path, a lower-case request may be its for a
  // case-insensitive backend (`/api` and a route `/Api`): the lenient lookup is always needed.
  const caseMatters = routes.some((route) => route.path !== route.path.toLowerCase());

  return {
    routes,
    match(path) {
      if (isGatewayPath(path, pagesPath)) return GATEWAY;
      const key = path.includes("%") ? comparable(path) : path;
      const entry = longest(byPath, key);
      if (!entry) return NONE;
      for (const reading of lenientReadings(key)) {
        if ((caseMatters || reading !== key) && longest(byLowerPath, reading) !== entry) return AMBIGUOUS;
      }
      return { kind: "route", route: entry.prepared, rest: restAfter(path, entry.segments) };
    },
  };
}

/** The longest route whose path is `key` or a prefix of it on a "/" boundary. */
function longest<E>(byPath: Map<string, E>, key: string): E | undefined {
  const exact = byPath.get(key);
  if (exact) return exact;
  for (let end = key.lastIndexOf("/"); end > 0; end = key.lastIndexOf("/", end - 1)) {
    const entry = byPath.get(key.slice(0, end));
    if (entry) return entry;
  }
  return byPath.get("/");
}

/** "/" has no segments, "/a/b" two. */
function segmentCount(routePath: string): number {
  return routePath === "/" ? 0 : routePath.split("/").length - 1;
}

/**
 * The raw path after its first `segments` segments, starting with "/": what a strip_prefix
 * route sends on. Decoding for the comparison never adds or removes a literal "/", so the
 * route's segment count is the same in the raw path.
 */
function restAfter(path: string, segments: number): string {
  let at = 0;
  for (let i = 0; i < segments; i++) {
    at = path.indexOf("/", at + 1);
    if (at === -1) return "/";
  }
  return at === 0 ? path : path.slice(at);
}

/** Escapes kept as they are: they separate (or would un-escape) something. */
const KEPT_ENCODED = new Set(["/", "\\", "%", "?", "#"]);

/** The path with printable ASCII escapes decoded (all but KEPT_ENCODED) and the others upper-cased. */
export function comparable(path: string): string {
  return path.replace(/%([0-9A-Fa-f]{2})/g, (_escape, hex: string) => {
    const code = Number.parseInt(hex, 16);
    const char = String.fromCharCode(code);
    return code > 0x20 && code < 0x7f && !KEPT_ENCODED.has(char) ? char : `%${hex.toUpperCase()}`;
  });
}

/**
 * A comparable path as lenient backends read it: lower-cased, `;parameters` and trailing dots
 * dropped from each segment, and an encoded slash or backslash as a separator. The order
 * matters when a path has both `;` and an encoded separator (`/b;%5Ca/x` is `/b/x` to a server
 * that drops parameters first, `/b/a/x` to one that decodes first): both readings then.
 * Route paths hold no `;`, `%` or trailing dot, so readings that keep them match no more.
 * A segment emptied that way (`/api/;x/admin`, `/api/%2Fadmin`) is merged with its neighbour,
 * as Tomcat, nginx (merge_slashes) and Werkzeug do; and a backend that decodes twice reads
 * `%2561` as `a`, so those readings are taken of the once-decoded path too.
 */
export function lenientReadings(key: string): string[] {
  const readings = readingsOf(key);
  if (key.includes("%25")) {
    for (const reading of readingsOf(comparable(key.replaceAll("%25", "%")))) if (!readings.includes(reading)) readings.push(reading);
  }
  return readings;
}

function readingsOf(key: string): string[] {
  const lower = key.toLowerCase();
  if (!lower.includes("%2f") && !lower.includes("%5c")) return [merged(withoutDots(withoutParameters(lower)))];
  const decoded = (path: string) => path.replace(/%2f|%5c/g, "/");
  const first = merged(withoutDots(decoded(withoutParameters(lower))));
  const second = merged(withoutDots(withoutParameters(decoded(lower))));
  return first === second ? [first] : [first, second];
}

function merged(path: string): string {
  return path.includes("//") ? path.replace(/\/{2,}/g, "/") : path;
}

function withoutParameters(path: string): string {
  return path.includes(";") ? path.replace(/;[^/]*/g, "") : path;
}

function withoutDots(path: string): string {
  return path.includes(".") ? path.replace(/\.+(?=\/|$)/g, "") : path;
}
