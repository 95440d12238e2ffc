import proxyaddr from "proxy-addr";

/**
 * What the gateway establishes about a request before routing it: its id, who sent it,
 * and how it reached the gateway. Client-supplied forwarding headers are believed only
 * when the socket peer is a trusted proxy.
 */
export interface RequestContext {
  readonly requestId: string;
  /** The address that the rate limiter and logs attribute the request to. */
  readonly clientIp: string | undefined;
  /** X-Forwarded-For for the backend: the trusted chain with the peer appended, or just the peer. */
  readonly forwardedFor: string | undefined;
  readonly forwardedProto: string;
  readonly forwardedHost: string;
  readonly startedAt: number;
  /** Filled in while the request is handled, for the log line. */
  readonly outcome: {
    /** The route's name, once matched. */
    route?: string;
    userId?: string;
    upstreamMs?: number;
    /** Set once the request is counted and logged, so that a late failure is not counted twice. */
    answered?: boolean;
  };
}

/**
 * The header the gateway sets (after deleting any client-sent one) to the client address it
 * established from the socket and TRUSTED_PROXIES. Better Auth's rate limiter reads the IP
 * only from headers, so this gives each client its own bucket and none can pick another's.
 */
export const CLIENT_IP_HEADER = "x-authgate-client-ip";

export type TrustProxy = (address: string, hop: number) => boolean;

/** Compiles TRUSTED_PROXIES (IPs and CIDRs); throws TypeError on an invalid entry. */
export function compileTrustedProxies(entries: readonly string[]): TrustProxy {
  return proxyaddr.compile([...entries]);
}

// ≤ 128 visible ASCII characters: anything else (spaces, control characters, a huge
// value) could split or bloat log lines, so a fresh id is used instead.
const SANE_REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

export function chooseRequestId(supplied: string | null): string {
  return supplied !== null && SANE_REQUEST_ID.test(supplied) ? supplied : crypto.randomUUID();
}

export interface ContextInput {
  headers: Headers;
  peerIp: string | undefined;
  /** "http" or "https" as the gateway itself was reached. */
  ownProto: string;
  trustProxy: TrustProxy;
}

export function establishContext({ headers, peerIp, ownProto, trustProxy }: ContextInput): RequestContext {
  const requestId = chooseRequestId(headers.get("x-request-id"));
  const peerTrusted = peerIp !== undefined && trustProxy(peerIp, 0);
  const suppliedFor = headers.get("x-forwarded-for");

  let clientIp = peerIp;
  let forwardedFor = peerIp;
  if (peerTrusted && suppliedFor) {
    // proxy-addr walks the chain from the peer leftwards while hops are trusted.
    clientIp = proxyaddr({ connection: { remoteAddress: peerIp }, headers: { "x-forwarded-for": suppliedFor } } as never, trustProxy);
    forwardedFor = `${suppliedFor}, ${peerIp}`;
  }
  const ownHost = headers.get("host") ?? "";
  return {
    requestId,
    clientIp,
    forwardedFor,
    forwardedProto: (peerTrusted && firstValue(headers.get("x-forwarded-proto"))) || ownProto,
    forwardedHost: (peerTrusted && firstValue(headers.get("x-forwarded-host"))) || ownHost,
    startedAt: performance.now(),
    outcome: {},
  };
}

function firstValue(header: string | null): string | undefined {
  const value = header?.split(",")[0]?.trim();
  return value ? value : undefined;
}
