import { SignJWT } from "jose";
import type { SigningKeys } from "./signing-key";

/**
 * The claims chosen for the backend: who the caller is, not the whole user row. A session's
 * token carries its id (`sid`), an API key's the key's id (`key_id`).
 */
export type CallerClaims = {
  sub: string;
  email: string;
  email_verified: boolean;
  name: string;
  /** Better Auth's admin plugin: "user" unless given another. */
  role: string;
} & ({ auth_method: "session"; sid: string } | { auth_method: "api_key"; key_id: string });

export interface MintedToken {
  readonly token: string;
  /** Epoch ms after which the token has less than half its lifetime left. */
  readonly renewAt: number;
}

export interface MinterOptions {
  signingKeys: SigningKeys;
  /** BETTER_AUTH_URL's origin, as Better Auth's own tokens carry it. */
  issuer: string;
  lifetimeSeconds: number;
}

/**
 * Signs backend JWTs the way Better Auth's jwt plugin does, with the cached key. The audience
 * is the route's (BETTER_AUTH_URL's origin unless the route names its own).
 */
export function createMinter({ signingKeys, issuer, lifetimeSeconds }: MinterOptions) {
  return async function mint({ sub, ...claims }: CallerClaims, audience: string): Promise<MintedToken> {
    const key = await signingKeys.current();
    const issuedAt = Math.floor(Date.now() / 1000);
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: key.alg, kid: key.kid })
      .setSubject(sub)
      .setIssuer(issuer)
      .setAudience(audience)
      .setIssuedAt(issuedAt)
      .setExpirationTime(issuedAt + lifetimeSeconds)
      .sign(key.privateKey);
    return { token, renewAt: (issuedAt + lifetimeSeconds / 2) * 1000 };
  };
}

export type Minter = ReturnType<typeof createMinter>;
