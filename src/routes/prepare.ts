import { backendBase } from "../proxy/target";
import { createStaticFiles } from "../static/serve";
import type { Route, StaticRoute, UpstreamRoute } from "./table";

/** An upstream route with its base URLs (no trailing slash), for HTTP and for WebSockets. */
export interface UpstreamTarget {
  readonly kind: "upstream";
  readonly route: UpstreamRoute;
  readonly base: string;
  readonly wsBase: string;
}

/** A route with what its requests need, built once per table. */
export type PreparedRoute =
  | UpstreamTarget
  | { readonly kind: "static"; readonly route: StaticRoute; readonly files: ReturnType<typeof createStaticFiles> };

export function prepareRoute(route: Route): PreparedRoute {
  if (route.kind === "static") return { kind: "static", route, files: createStaticFiles({ root: route.root, spa: route.spa, wellKnown: route.path === "/" }) };
  const base = backendBase(route.upstream);
  return { kind: "upstream", route, base, wsBase: base.replace(/^http/, "ws") };
}

/** What the pipeline decided about a request on the table's routes, for the app's handler. */
export interface Routed {
  readonly target: PreparedRoute;
  /** request.url's raw path, the part after the route's path (for strip_prefix), and the query with its "?" or "". */
  readonly path: string;
  readonly rest: string;
  readonly query: string;
}
