import type { Route, UpstreamRoute } from "../../src/routes/table";

/** An upstream route as the config file would give it, for the pure stages' table tests. */
export function upstreamRoute(overrides: Partial<UpstreamRoute> = {}): Route {
  return {
    index: 0,
    name: "r",
    path: "/r",
    auth: "required",
    allow: undefined,
    kind: "upstream",
    upstream: new URL("http://upstream.test"),
    timeoutMs: 1000,
    maxBodyBytes: 0,
    stripPrefix: false,
    audience: "http://gw.test",
    identityHeaders: false,
    ...overrides,
  };
}
