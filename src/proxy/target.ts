/**
 * Builds the backend URL from the request's raw target. `request.url` keeps the client's
 * percent-encoding and query bytes as sent (Bun resolves only dot segments), so the
 * path and query are taken from it as a string and never decoded or re-encoded.
 */
export function rawPathAndQuery(requestUrl: string): string {
  // Bun leaves request.url relative when it could not use the Host; the target is all of it.
  if (requestUrl.startsWith("/")) return requestUrl.split("#", 1)[0]!;
  // Skip "scheme://authority"; what follows is the origin-form target.
  const schemeEnd = requestUrl.indexOf("://");
  if (schemeEnd === -1) return "/"; // an authority-form target (CONNECT host:port) has no path
  const afterScheme = schemeEnd + 3;
  const pathStart = requestUrl.indexOf("/", afterScheme);
  if (pathStart === -1) return "/";
  const hash = requestUrl.indexOf("#", pathStart);
  return hash === -1 ? requestUrl.slice(pathStart) : requestUrl.slice(pathStart, hash);
}

/** The backend base without a trailing slash, so `base + "/api/x"` never doubles it. */
export function backendBase(backendUrl: URL): string {
  return backendUrl.href.replace(/\/+$/, "");
}

/**
 * Where a route's requests go: the upstream's origin and prefix, and the path the client sent
 * (or, with strip_prefix, the part after the route's path) with the query byte for byte.
 * `/svc/x?q` on a `/svc` route with strip_prefix reaches `http://up/prefix` as `/prefix/x?q`,
 * `/svc` as `/prefix/`.
 */
export function upstreamUrl(base: string, stripPrefix: boolean, target: { path: string; rest: string; query: string }): string {
  return base + (stripPrefix ? target.rest : target.path) + target.query;
}
