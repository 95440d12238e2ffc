import { AUTH_BASE_PATH } from "./paths";

/**
 * Identity providers, read once from the environment: GitHub and Google (Better Auth's social
 * providers) and any number of OpenID Connect providers by discovery (its generic OAuth
 * plugin). Each becomes a button on the sign-in and sign-up pages and a callback URL to
 * register at the provider.
 */
export interface Provider {
  /** Lower-case; in URLs and `data-provider`. */
  readonly id: string;
  readonly kind: "github" | "google" | "oidc";
  /** The button's label. */
  readonly name: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** OIDC only: the issuer, whose `/.well-known/openid-configuration` is read. */
  readonly issuer?: string;
  /** OIDC only. */
  readonly scopes: readonly string[];
}

type Read = (name: string) => string | undefined;

const OIDC_ID = /^[a-z][a-z0-9_]{0,31}$/;
const SOCIAL: readonly { id: "github" | "google"; name: string; variable: string }[] = [
  { id: "github", name: "GitHub", variable: "GITHUB" },
  { id: "google", name: "Google", variable: "GOOGLE" },
];

export function parseProviders(read: Read, problems: string[]): Provider[] {
  const providers: Provider[] = [];
  for (const social of SOCIAL) {
    const clientId = read(`${social.variable}_CLIENT_ID`);
    const clientSecret = read(`${social.variable}_CLIENT_SECRET`);
    if (!clientId && !clientSecret) continue;
    if (!clientId || !clientSecret) {
      problems.push(`${social.variable}_CLIENT_ID and ${social.variable}_CLIENT_SECRET must be set together (${social.name} sign-in)`);
      continue;
    }
    providers.push({ id: social.id, kind: social.id, name: social.name, clientId, clientSecret, scopes: [] });
  }

  const listed = (read("OIDC_PROVIDERS") ?? "")
    .split(",")
    .map((id) => id.trim().toLowerCase())
    .filter(Boolean);
  for (const id of listed) {
    if (!OIDC_ID.test(id)) {
      problems.push(`OIDC_PROVIDERS: "${id}" must be 1 to 32 letters, digits or "_", starting with a letter`);
      continue;
    }
    if (providers.some((provider) => provider.id === id)) {
      problems.push(`OIDC_PROVIDERS: "${id}" is listed twice or is a built-in provider's id`);
      continue;
    }
    const prefix = `OIDC_${id.toUpperCase()}_`;
    const issuerRaw = read(`${prefix}ISSUER`);
    const clientId = read(`${prefix}CLIENT_ID`);
    const clientSecret = read(`${prefix}CLIENT_SECRET`);
    const missing = [
      issuerRaw ? undefined : `${prefix}ISSUER`,
      clientId ? undefined : `${prefix}CLIENT_ID`,
      clientSecret ? undefined : `${prefix}CLIENT_SECRET`,
    ].filter(Boolean);
    if (missing.length > 0) {
      problems.push(`OIDC_PROVIDERS lists "${id}": set ${missing.join(", ")}`);
      continue;
    }
    const issuer = parseIssuer(issuerRaw!, `${prefix}ISSUER`, problems);
    if (!issuer) continue;
    const scopes = (read(`${prefix}SCOPES`) ?? "openid email profile").split(/[\s,]+/).filter(Boolean);
    if (!scopes.includes("openid")) problems.push(`${prefix}SCOPES must include "openid", got "${scopes.join(" ")}"`);
    providers.push({ id, kind: "oidc", name: read(`${prefix}NAME`) ?? id, clientId: clientId!, clientSecret: clientSecret!, issuer, scopes });
  }
  return providers;
}

/** The issuer without a trailing slash; http only for this machine's own addresses. */
function parseIssuer(raw: string, name: string, problems: string[]): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    problems.push(`${name} must be an https:// URL, got "${raw.slice(0, 100)}"`);
    return undefined;
  }
  const loopback = url.hostname === "localhost" || url.hostname === "[::1]" || /^127\./.test(url.hostname);
  if (url.protocol !== "https:" && !(url.protocol === "http:" && loopback)) {
    problems.push(`${name} must be an https:// URL (http:// only on this machine), got "${raw.slice(0, 100)}"`);
    return undefined;
  }
  if (url.username || url.password || url.search || url.hash) {
    problems.push(`${name} must be the issuer URL alone (no credentials, query or fragment)`);
    return undefined;
  }
  return url.href.replace(/\/$/, "");
}

/**
 * Where the provider sends the browser back: the URL to register at the provider. Better Auth
 * 1.7's generic OAuth plugin registers OpenID providers as social ones: the same callback.
 */
export function callbackUrl(provider: Provider, origin: string): string {
  return `${origin}${AUTH_BASE_PATH}/callback/${provider.id}`;
}

/** One line per provider, for the start-up log and `check-config`. */
export function describeProviders(providers: readonly Provider[], origin: string): string {
  if (providers.length === 0) return "";
  const width = Math.max(...providers.map((provider) => provider.id.length));
  const lines = providers.map((provider) => `  ${provider.id.padEnd(width)}  ${callbackUrl(provider, origin)}`);
  return `Identity providers (register each callback URL at its provider):\n${lines.join("\n")}\n`;
}
