/**
 * Errors that reach clients carry a status and a generic message; the detail (cause,
 * backend address) stays on the error for the server log and never reaches the body.
 */
export class GatewayError extends Error {
  constructor(
    readonly status: number,
    readonly publicMessage: string,
    options?: { cause?: unknown },
  ) {
    super(publicMessage, options);
    this.name = new.target.name;
  }
}

export class AuthenticationRequired extends GatewayError {
  constructor() {
    super(401, "Authentication required");
  }
}

/** Signed in, but the route's `allow` admits nobody like the caller. */
export class Forbidden extends GatewayError {
  constructor() {
    super(403, "Forbidden");
  }
}

export class BadGateway extends GatewayError {
  /** "reset" when the connection was cut, "refused" for every other failure to get an answer. */
  readonly kind: "refused" | "reset";
  constructor(cause: unknown) {
    super(502, "Backend unavailable", { cause });
    this.kind = (cause as { code?: unknown } | undefined)?.code === "ECONNRESET" ? "reset" : "refused";
  }
}

/**
 * The client's connection ended before the backend answered (it left, or Bun closed the
 * connection: see "Pipelining" in the README). Nobody receives this answer; its status (nginx's
 * 499) marks the request's log line, so it is not mistaken for a backend failure.
 */
export class ClientClosedRequest extends GatewayError {
  constructor() {
    super(499, "Client closed request");
  }
}

export class GatewayTimeout extends GatewayError {
  readonly kind = "timeout";
  constructor() {
    super(504, "Backend did not answer in time");
  }
}

export function jsonError(status: number, message: string): Response {
  return new Response(JSON.stringify({ error: message }), {
    status,
    headers: { "content-type": "application/json; charset=utf-8" },
  });
}

/** What may be logged about a failure: its class and code, not its message (which can hold a URL). */
export function describeError(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { error: typeof error };
  const described: Record<string, unknown> = { error: error.name };
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string") described.code = code;
  if (error.cause !== undefined) described.cause = describeError(error.cause);
  return described;
}
