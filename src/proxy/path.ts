/**
 * The path rule for /api/*, checked before any auth or forwarding.
 *
 * Bun resolves literal and percent-encoded dot segments (`..`, `.%2E`) and turns `\` into `/`
 * (WHATWG URL rules) before the gateway sees `request.url`, so `/api/../x` arrives as `/x`
 * and is never proxied. What can still arrive is a dot segment hidden behind an encoded
 * separator: `/api/..%2Fauth` or `/api/%2e%2e%5Cadmin`. A backend that decodes `%2F`/`%5C`
 * before resolving dots would see a path outside the one the gateway routed on, so every
 * path whose segments — split at `/`, `\`, `%2F` and `%5C` — include `.` or `..` (in any
 * mix of literal and `%2E`) is refused. A lone `%2F` inside a segment (`/api/files/a%2Fb`)
 * is an ordinary encoded character and passes unchanged.
 *
 * Also refused: invalid percent-encoding (`%zz`, `%4`), which backends decode
 * inconsistently, and an encoded NUL (`%00`). The query string is the backend's business
 * and is forwarded byte for byte.
 */
export function pathProblem(rawPath: string): string | undefined {
  if (/%(?![0-9a-fA-F]{2})/.test(rawPath)) return "invalid percent-encoding";
  if (/%00/.test(rawPath)) return "encoded NUL";
  for (const segment of rawPath.split(/\/|\\|%2f|%5c/i)) {
    const decoded = segment.replace(/%2e/gi, ".");
    if (decoded === "." || decoded === "..") return "dot segment";
  }
  return undefined;
}
