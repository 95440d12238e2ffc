/**
 * Errors that reach clients carry a status and a generic message; the detail (cause,
 * backend address) stays on the error for the server log and never reaches the body.
 */
export class GatewayError extends Error {
  /** Headers the answer carries (Retry-After). */
  readonly headers: Readonly<Record<string, string>>;
  constructor(
    readonly status: number,
    readonly publicMessage: string,
    options?: { cause?: unknown; headers?: Record<string, string> },
  ) {
    // An answer, not a fault: no stack trace is captured (nothing logs one: describeError
    // gives the class and code; a cause keeps its own). Capturing it was ≈5% of a 401's time.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(publicMessage, options);
    Error.stackTraceLimit = limit;
    this.name = new.target.name;
    this.headers = options?.headers ?? {};
  }

  /** The generic JSON answer, with the error's headers. */
  toResponse(): Response {
    const response = jsonError(this.status, this.publicMessage);
    for (const [name, value] of Object.entries(this.headers)) response.headers.set(name, value);
    return response;
  }
}

/**
 * An API key that does not let the request through. The reasons a key holder may know (it is
 * their key); an invalid key is told apart from a missing credential so that a caller sees
 * their key is the problem.
 */
export class ApiKeyRefused extends GatewayError {
  constructor(
    readonly reason: "conflicting-keys" | "keys-not-accepted" | "invalid" | "banned" | "rate-limited" | "usage-exceeded",
    retryAfterSeconds?: number,
  ) {
    const [status, message] = API_KEY_REFUSALS[reason];
    super(status, message, retryAfterSeconds === undefined ? undefined : { headers: { "retry-after": String(retryAfterSeconds) } });
  }
}

const API_KEY_REFUSALS: Record<ApiKeyRefused["reason"], [number, string]> = {
  "conflicting-keys": [400, "Two different API keys in one request"],
  "keys-not-accepted": [403, "This route does not accept API keys"],
  invalid: [401, "Invalid API key"],
  banned: [403, "This account is banned"],
  "rate-limited": [429, "API key rate limit exceeded"],
  "usage-exceeded": [429, "API key usage exhausted"],
};

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
  return new Response(errorBody(message), {
    status,
    headers: { "content-type": "application/json; charset=utf-8" },
  });
}

// The gateway's messages are a fixed set: each body is serialised once.
const errorBodies = new Map<string, string>();
function errorBody(message: string): string {
  let body = errorBodies.get(message);
  if (body === undefined) {
    body = JSON.stringify({ error: message });
    if (errorBodies.size < 256) errorBodies.set(message, body);
  }
  return body;
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
