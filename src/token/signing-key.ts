import { importJWK, type CryptoKey } from "jose";
import type { AuthOperations } from "../auth/service";

export interface SigningKey {
  readonly kid: string;
  readonly alg: string;
  readonly privateKey: CryptoKey;
  /** Epoch ms after which to ask the auth worker again (rotation, a newer key's publish delay), or null. */
  readonly expiresAt: number | null;
}

/**
 * The current signing key, decrypted and imported once per process and not per token
 * (Better Auth repeats both on every sign: better-auth#3954).
 */
export function createSigningKeys(auth: Pick<AuthOperations, "signingKey" | "newestKeyId">) {
  let current: Promise<SigningKey> | undefined;

  async function load(): Promise<SigningKey> {
    const material = await auth.signingKey();
    return {
      kid: material.kid,
      alg: material.alg,
      privateKey: (await importJWK(JSON.parse(material.privateJwk), material.alg)) as CryptoKey,
      expiresAt: material.expiresAt,
    };
  }

  return {
    /** The key to sign with; loads it on first use, again after `refresh` and when it expires. */
    async current(): Promise<SigningKey> {
      current ??= load().catch((error) => {
        current = undefined; // a failed load is retried on the next call
        throw error;
      });
      const key = await current;
      if (key.expiresAt !== null && key.expiresAt <= Date.now()) {
        // Ask once more; the worker rotates if needed. A key it hands back already expired is
        // used for this token rather than asked for again in a loop.
        current = load();
        return current;
      }
      return key;
    },
    /**
     * Checks (one indexed query) whether another key became the newest, e.g. minted by
     * another instance, and switches to it. Runs off the request path.
     */
    async refresh(): Promise<void> {
      if (!current) return;
      const cachedKid = (await current.catch(() => undefined))?.kid;
      const newest = await auth.newestKeyId();
      if (newest !== null && newest !== cachedKid) current = undefined;
    },
  };
}

export type SigningKeys = ReturnType<typeof createSigningKeys>;
