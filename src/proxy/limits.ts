import { jsonError } from "../errors";

/**
 * The limits stage: bodies refused before a byte of them is read, by what they declare. Pure;
 * each rule is a row in tests/limits.test.ts. A chunked body declares nothing: it is metered
 * as it streams (src/proxy/body.ts) and cut off with the same 413.
 */

/** Bodies of Better Auth's JSON requests are small; a larger one is refused before it is read. */
export const AUTH_BODY_LIMIT = 64 * 1024;

export interface DeclaredBody {
  /** The Content-Length header (checkProtocol has made sure it is one number), or null. */
  contentLength: string | null;
  transferEncoding: string | null;
  hasBody: boolean;
}

/** A declared body over a route's max_body_bytes (0: no limit): 413. */
export function routeBodyRefused(body: DeclaredBody, maxBodyBytes: number): Response | undefined {
  const length = lengthOf(body);
  if (maxBodyBytes > 0 && length !== undefined && length > maxBodyBytes) return jsonError(413, "Request body too large");
  return undefined;
}

/** Better Auth reads the whole body into memory, so it must be small (413) and announce its size (411). */
export function authBodyRefused(body: DeclaredBody): Response | undefined {
  const length = lengthOf(body);
  if (length !== undefined && length > AUTH_BODY_LIMIT) return jsonError(413, "Request body too large");
  if (length === undefined && body.hasBody && body.transferEncoding !== null) return jsonError(411, "Content-Length required");
  return undefined;
}

export function declaredBody(request: Request): DeclaredBody {
  return {
    contentLength: request.headers.get("content-length"),
    transferEncoding: request.headers.get("transfer-encoding"),
    hasBody: request.body !== null,
  };
}

function lengthOf(body: DeclaredBody): number | undefined {
  return body.contentLength === null ? undefined : Number(body.contentLength);
}
