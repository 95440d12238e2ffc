import { AUTH_BASE_PATH } from "../auth/paths";
import type { Route } from "./table";

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
 * upstream past a longer route's rules: percent-encoded unreserved characters are decoded
 * (`/api/%61dmin` is `/api/admin`, RFC 3986 §6.2.2.2). An encoded slash or backslash is not
 * a separator to the gateway, but backends that decode it before routing read it as one: a
 * path that matches another route that way (`/api%2Fadmin`) is refused as ambiguous.
 */

export type Match<T> =
  /** Answered by the gateway itself: Better Auth, the docs, health, readiness, metrics. */
  | { readonly kind: "gateway" }
  /** The route as prepared, and the request path after its prefix, raw, starting with "/". */
  | { readonly kind: "route"; readonly route: T; readonly rest: string }
  /** No route: 404. */
  | { readonly kind: "none" }
  /** An encoded separator would put the path under another route for a backend that decodes it: 400. */
  | { readonly kind: "ambiguous" };

const GATEWAY_PATHS = new Set(["/healthz", "/readyz", "/metrics", AUTH_BASE_PATH]);
const AUTH_PREFIX = `${AUTH_BASE_PATH}/`;

/** Whether the gateway answers this path itself, whatever the table says (RESERVED_PATHS, RESERVED_PREFIXES). */
export function isGatewayPath(path: string): boolean {
  return GATEWAY_PATHS.has(path) || path.startsWith(AUTH_PREFIX) || path.startsWith("/swagger");
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
export function compileTable<T>(routes: readonly Route[], prepare: (route: Route) => T): RouteTable<T> {
  const byPath = new Map<string, Entry<T>>();
  for (const route of routes) byPath.set(route.path, { prepared: prepare(route), segments: segmentCount(route.path) });

  /** The longest route whose path is `key` or a prefix of it on a "/" boundary. */
  function longest(key: string): Entry<T> | undefined {
    const exact = byPath.get(key);
    if (exact) return exact;
    for (let end = key.lastIndexOf("/"); end > 0; end = key.lastIndexOf("/", end - 1)) {
      const route = byPath.get(key.slice(0, end));
      if (route) return route;
    }
    return byPath.get("/");
  }

  return {
    routes,
    match(path) {
      if (isGatewayPath(path)) return GATEWAY;
      const encoded = path.includes("%");
      const key = encoded ? comparable(path) : path;
      const entry = longest(key);
      if (encoded && /%(2F|5C)/.test(key) && longest(key.replace(/%(2F|5C)/g, "/")) !== entry) return AMBIGUOUS;
      if (!entry) return NONE;
      return { kind: "route", route: entry.prepared, rest: restAfter(path, entry.segments) };
    },
  };
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

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/** The path with unreserved characters decoded and other escapes upper-cased (RFC 3986 §6.2.2). */
export function comparable(path: string): string {
  return path.replace(/%([0-9A-Fa-f]{2})/g, (escape, hex: string) => {
    const char = String.fromCharCode(Number.parseInt(hex, 16));
    return UNRESERVED.test(char) ? char : `%${hex.toUpperCase()}`;
  });
}
