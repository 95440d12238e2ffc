/**
 * The path rule for every request, checked before any auth or forwarding, on `request.url`'s path.
 *
 * Bun resolves literal and percent-encoded dot segments (`..`, `.%2E`) and turns `\` into `/`
 * (WHATWG URL rules) before the gateway sees `request.url`; those are caught on the target as
 * received by the routes of rawRoutes below. What `request.url` can still carry is a dot
 * segment hidden behind an encoded separator: `/api/..%2Fauth` or `/api/%2e%2e%5Cadmin`. A
 * backend that decodes `%2F`/`%5C` before resolving dots would see a path outside the one the
 * gateway routed on, so every path whose segments — split at `/`, `\`, `%2F` and `%5C` —
 * include `.` or `..` (in any mix of literal and `%2E`) is refused. So is `..;x`: Java servers
 * (Tomcat, Jetty) drop a segment's `;parameters` before resolving dots. A lone `%2F` inside a
 * segment (`/api/files/a%2Fb`) is an ordinary encoded character and passes unchanged.
 *
 * Also refused: invalid percent-encoding (`%zz`, `%4`), which backends decode
 * inconsistently, and an encoded NUL (`%00`). The query string is the backend's business
 * and is forwarded byte for byte.
 */
export function pathProblem(rawPath: string): string | undefined {
  // Every problem below needs a "%" or a "." (a dot segment, spelled or encoded): most paths
  // have neither, and skip the regular expressions and the split (≈1% of a request's time).
  if (!rawPath.includes("%") && !rawPath.includes(".")) return undefined;
  if (/%(?![0-9a-fA-F]{2})/.test(rawPath)) return "invalid percent-encoding";
  if (/%00/.test(rawPath)) return "encoded NUL";
  for (const segment of rawPath.split(/\/|\\|%2f|%5c/i)) {
    if (isDotSegment(segment.replace(/%2e/gi, "."))) return "dot segment";
  }
  return undefined;
}

/** `.` or `..`, also with `;parameters` after it (`..;x`), once `%2E` is decoded. */
function isDotSegment(decoded: string): boolean {
  const name = decoded.split(";", 1)[0];
  return name === "." || name === "..";
}

/**
 * Deepest path whose raw target the gateway can check segment by segment (see rawRoutes): 33
 * segments (`/api` and 32 below it, as before route tables). A deeper path, like one with an
 * empty segment, is refused.
 */
export const MAX_PATH_SEGMENTS = 33;

/** How a request's target, as received, was seen (see rawRoutes). */
export type RawTarget =
  /** These segments (percent-decoded by Bun), as received. */
  | { kind: "checked"; segments: Record<string, string> }
  /** With an empty segment or more than MAX_PATH_SEGMENTS. */
  | { kind: "unchecked" }
  /** No path to check (the asterisk form), or a caller of its own that passed no raw target. */
  | { kind: "elsewhere" };

/**
 * Route patterns whose matches tell what the client really sent.
 *
 * Bun 1.4 matches `Bun.serve({ routes })` against the request target as received (the
 * absolute form's path too), while `request.url` comes from its URL parser, which has already
 * resolved `..`, `.`, their `%2E` spellings and `\`. So `/api/x/../auth/sign-in/email` would
 * reach the gateway as the Better Auth route `/api/auth/sign-in/email`, `/public/../admin` as
 * `/admin` (another route, with other rules), and `/assets/../../etc/passwd` as
 * `/etc/passwd`. One route per depth (`/:s0`, `/:s0/:s1`, …, each also with a trailing slash)
 * hands the handler every segment as received, so any dot segment can be refused
 * (rawTargetProblem). Bun's params do not match empty segments, and only MAX_PATH_SEGMENTS
 * depths are listed: such paths fall to the `/*` pattern and are refused too.
 */
export function rawRoutes(): { pattern: string; kind: RawTarget["kind"] }[] {
  const routes: { pattern: string; kind: RawTarget["kind"] }[] = [{ pattern: "/", kind: "checked" }];
  let pattern = "";
  for (let depth = 0; depth < MAX_PATH_SEGMENTS; depth++) {
    pattern += `/:s${depth}`;
    routes.push({ pattern, kind: "checked" }, { pattern: `${pattern}/`, kind: "checked" });
  }
  routes.push({ pattern: "/*", kind: "unchecked" });
  return routes;
}

/**
 * Why a target, as received, is refused: a dot segment (`.`/`..` in any spelling, `..;x`
 * included, split at `/` and `\`, which Bun's params have already percent-decoded), a `#` in
 * the path, or an empty segment or too many of them. `undefined`: nothing to refuse.
 */
export function rawTargetProblem(raw: RawTarget): string | undefined {
  switch (raw.kind) {
    case "checked":
      for (const segment of Object.values(raw.segments)) {
        // A request target has no fragment (RFC 9112 §3.2), but Bun's params keep one while
        // request.url resolves what precedes it: `/api/.#x` would reach the backend as `/api/`.
        if (segment.includes("#")) return "fragment in the target";
        if (!segment.includes(".")) continue; // no dot segment without a dot
        for (const piece of segment.split(/[/\\]/)) if (isDotSegment(piece)) return "dot segment";
      }
      return undefined;
    case "unchecked":
      return `empty segment, or more than ${MAX_PATH_SEGMENTS} segments`;
    case "elsewhere":
      return undefined;
  }
}
