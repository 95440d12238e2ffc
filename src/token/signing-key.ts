import { symmetricDecrypt } from "better-auth/crypto";
import { importJWK, type CryptoKey } from "jose";
import type { Kysely } from "kysely";
import type { Auth } from "../auth";

export interface SigningKey {
  readonly kid: string;
  readonly alg: string;
  readonly privateKey: CryptoKey;
  /** When Better Auth considers the key expired (rotation), if ever. */
  readonly expiresAt: Date | null;
}

interface JwksRow {
  id: string;
  privateKey: string;
  alg: string | null;
  expiresAt: string | number | Date | null;
}

/**
 * The current signing key, decrypted and imported once per process and not per token
 * (Better Auth repeats both on every sign: better-auth#3954).
 *
 * The newest key is chosen with ORDER BY createdAt, in SQL: Better Auth's own lookup reads
 * `SELECT * FROM jwks LIMIT 100` without an order, so past 100 rows it can miss the newest
 * key and mint yet another one on every sign.
 */
export function createSigningKeys(auth: Auth, db: Kysely<any>) {
  let current: Promise<SigningKey> | undefined;

  async function latestRow(): Promise<JwksRow | undefined> {
    return (await db
      .selectFrom("jwks")
      .select(["id", "privateKey", "alg", "expiresAt"])
      .orderBy("createdAt", "desc")
      .limit(1)
      .executeTakeFirst()) as JwksRow | undefined;
  }

  async function load(): Promise<SigningKey> {
    let row = await latestRow();
    if (!row || isExpired(row)) {
      // Better Auth mints a key when it has no live one; asking it to sign once does that.
      await auth.api.signJWT({ body: { payload: { purpose: "authgate key provisioning" } } });
      row = await latestRow();
      if (!row) throw new Error("Better Auth did not create a signing key");
    }
    const context = await auth.$context;
    const privateJwk = await symmetricDecrypt({ key: context.secretConfig, data: JSON.parse(row.privateKey) });
    const alg = row.alg ?? "EdDSA";
    return {
      kid: row.id,
      alg,
      privateKey: (await importJWK(JSON.parse(privateJwk), alg)) as CryptoKey,
      expiresAt: row.expiresAt === null ? null : new Date(row.expiresAt),
    };
  }

  return {
    /** The key to sign with; loads it on first use and again after `refresh`. */
    async current(): Promise<SigningKey> {
      current ??= load().catch((error) => {
        current = undefined; // a failed load is retried on the next call
        throw error;
      });
      const key = await current;
      if (key.expiresAt && key.expiresAt.getTime() <= Date.now()) {
        current = undefined;
        return this.current();
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
      const newest = await db.selectFrom("jwks").select("id").orderBy("createdAt", "desc").limit(1).executeTakeFirst();
      if (newest && newest.id !== cachedKid) current = undefined;
    },
  };
}

export type SigningKeys = ReturnType<typeof createSigningKeys>;

function isExpired(row: JwksRow): boolean {
  return row.expiresAt !== null && new Date(row.expiresAt).getTime() <= Date.now();
}
