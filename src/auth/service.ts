import { APIError } from "better-auth/api";
import { symmetricDecrypt } from "better-auth/crypto";
import { defaultKeyHasher } from "@better-auth/api-key";
import { sql } from "kysely";
import type { Config } from "../config";
import { createMailer, type Mailer } from "../email/mailer";
import { describeError } from "../errors";
import { loadTemplates } from "../pages/templates";
import { openDatabase, type GatewayDatabase } from "../db";
import { createRedisStorage, type RedisStorage } from "../db/redis";
import type { Logger } from "../ops/log";
import type { CallerClaims } from "../token/mint";
import { AUTH_BASE_PATH, createAuth, DEFAULT_ROLE, migrate, type Auth } from "./index";
import { SESSION_ENDING_ROUTES } from "./paths";
import { resolveAuthSecret } from "./secret";

/** A validated session, as the proxy needs it. */
export interface SessionLookup {
  claims: CallerClaims;
  /** Epoch ms when the session expires. */
  expiresAt: number;
  /** `Set-Cookie` values from a session refresh, for the client. */
  setCookies: string[];
}

/** How a session is presented: the browser's Cookie header, or a native app's bearer token. */
export type SessionCredential = { cookie: string } | { bearer: string };

/** An API key checked by Better Auth (and its owner by the gateway). */
export type KeyLookup =
  | {
      ok: true;
      claims: CallerClaims;
      /** Epoch ms when the key expires, or null. */
      expiresAt: number | null;
      /** A key with a rate limit or a usage quota is checked on every request (Better Auth counts them), never cached. */
      counted: boolean;
    }
  | { ok: false; reason: "invalid" | "banned" | "usage-exceeded" }
  | { ok: false; reason: "rate-limited"; retryAfterSeconds: number };

/** The current signing key as Better Auth stores it, decrypted: a private JWK. */
export interface SigningKeyMaterial {
  kid: string;
  alg: string;
  privateJwk: string;
  /** Epoch ms after which the proxy should ask again (rotation, or a newer key published), or null. */
  expiresAt: number | null;
}

export interface SerializedResponse {
  status: number;
  headers: [string, string][];
  body: ArrayBuffer | null;
}

/**
 * Everything the gateway asks of Better Auth and its database. It runs in a worker
 * (src/auth/worker.ts) so that Better Auth's heap, and its garbage collections, stay off the
 * proxy's thread; `migrate` uses it in-process.
 */
export interface AuthOperations {
  handle(method: string, url: string, headers: [string, string][], body: ArrayBuffer | null): Promise<SerializedResponse>;
  getSession(credential: SessionCredential, refresh: boolean): Promise<SessionLookup | null>;
  /** Checks a key and counts its use (rate limit, quota), as Better Auth does for every request it lets through. */
  verifyApiKey(key: string): Promise<KeyLookup>;
  /**
   * Whether a key is still good, and its owner's current claims, without counting a use: for
   * re-checks of open WebSockets, which must not spend a key's quota.
   */
  apiKeyStatus(key: string): Promise<KeyLookup>;
  signingKey(): Promise<SigningKeyMaterial>;
  newestKeyId(): Promise<string | null>;
  openApiSchema(): Promise<{ paths: Record<string, unknown>; components: unknown }>;
  /** Runs one query: the database answers. */
  ping(): Promise<true>;
  /** Redis answers PING; null when no Redis is configured. */
  pingRedis(): Promise<boolean | null>;
  close(): Promise<void>;
}

/** A row of Better Auth's `jwks` table, as the gateway reads it. */
export interface JwksRow {
  id: string;
  privateKey: string;
  alg: string | null;
  expiresAt: string | number | Date | null;
  createdAt: string | number | Date;
}

/** Better Auth on the configured database, migrated and with a signing key. */
export interface OpenedAuth {
  readonly auth: Auth;
  readonly context: AuthContext;
  readonly db: GatewayDatabase;
  /** Better Auth's secondary storage (REDIS_URL), connected; undefined without Redis. */
  readonly redis: RedisStorage | undefined;
  /** What Better Auth sends its mail with (wrapped when `wrapMailer` was given). */
  readonly mailer: Mailer;
  /** The newest signing keys, newest first. */
  newestKeys(count: number): Promise<JwksRow[]>;
  /** Mints a signing key when there is none or the newest has expired; run it under `db.withStartupLock`. */
  provisionSigningKey(): Promise<void>;
  /** Closes Redis and the database. */
  close(): Promise<void>;
}

export type AuthContext = Awaited<Auth["$context"]>;

export interface OpenAuthOptions {
  /** Called once per query (the auth worker counts them). */
  onQuery?: () => void;
  /** Wraps the mailer Better Auth is given (the command line reads the reset link it sends). */
  wrapMailer?: (mailer: Mailer) => Mailer;
  /** Told when the schema is about to change (the first run creates every table). */
  onMigrate?: () => void;
}

/**
 * Opens the database (and Redis), creates Better Auth, migrates and provisions the first
 * signing key under the start-up lock: what the auth worker, `migrate` and the admin commands
 * share. Whatever it opened is closed again when it fails.
 */
export async function openAuth(config: Config, logger: Logger, { onQuery, wrapMailer, onMigrate }: OpenAuthOptions = {}): Promise<OpenedAuth> {
  let lastConnectionWarning = 0;
  const db = openDatabase(config.databaseUrl, {
    onQuery,
    poolSize: config.databasePoolSize,
    onConnectionError(error) {
      // One line per 10 s at most while the database restarts, not one per connection.
      if (Date.now() - lastConnectionWarning < 10_000) return;
      lastConnectionWarning = Date.now();
      logger.warn("database connection lost: the pool replaces it", describeError(error));
    },
  });
  let redis: RedisStorage | undefined;
  try {
    const secret = resolveAuthSecret(config.authSecret, db.dataDir, logger.warn);
    redis = config.redisUrl ? createRedisStorage(config.redisUrl, logger) : undefined;
    await redis?.connect();
    const sender = createMailer(config.email, config.theme, loadTemplates(config.theme.templateDir), logger);
    const mailer = wrapMailer ? wrapMailer(sender) : sender;
    const auth = createAuth({ config, db, secret, logger, secondaryStorage: redis?.storage, mailer });
    const context = await auth.$context;

    /**
     * The newest key, chosen with ORDER BY createdAt in SQL: Better Auth's own lookup reads
     * `SELECT * FROM jwks LIMIT 100` without an order, so past 100 rows it can miss the newest
     * key and mint yet another one on every sign.
     */
    const newestKeys = async (count: number) =>
      (await db.kysely
        .selectFrom("jwks")
        .select(["id", "privateKey", "alg", "expiresAt", "createdAt"])
        .orderBy("createdAt", "desc")
        .limit(count)
        .execute()) as JwksRow[];

    const provisionSigningKey = async () => {
      const [row] = await newestKeys(1);
      const expiresAt = row ? keyExpiry(row) : null;
      if (!row || (expiresAt !== null && expiresAt <= Date.now())) {
        // Better Auth mints a key when it has no live one; asking it to sign once does that.
        await auth.api.signJWT({ body: { payload: { purpose: "authgate key provisioning" } } });
      }
    };
    // Instances starting at the same moment on one database take turns: one migrates and
    // mints the first signing key, the others find both done.
    await db.withStartupLock(async () => {
      await migrate(auth, onMigrate);
      await provisionSigningKey();
    });
    return {
      auth,
      context,
      db,
      redis,
      mailer,
      newestKeys,
      provisionSigningKey,
      async close() {
        redis?.close();
        await db.close();
      },
    };
  } catch (error) {
    redis?.close();
    await db.close();
    throw error;
  }
}

/** Epoch ms when a signing key expires, or null. */
function keyExpiry(row: Pick<JwksRow, "expiresAt">): number | null {
  return row.expiresAt === null ? null : new Date(row.expiresAt).getTime();
}

/** Opens the database, migrates it and creates Better Auth, in the calling thread. */
export async function createAuthOperations(config: Config, logger: Logger, onQuery?: () => void): Promise<AuthOperations> {
  const opened = await openAuth(config, logger, { onQuery });
  const { auth, context, db, redis, mailer, newestKeys: newestRows, provisionSigningKey } = opened;
  try {
    const newestRow = async () => (await newestRows(1))[0];
    const expiry = keyExpiry;

    /** The claims of a key's owner, or why the key does not let a request through. */
    const ownerClaims = async (apiKey: ApiKeyRow): Promise<KeyLookup> => {
      const user = await context.internalAdapter.findUserById(apiKey.referenceId);
      if (!user) return { ok: false, reason: "invalid" };
      if (isBanned(user as BanFields)) return { ok: false, reason: "banned" };
      return {
        ok: true,
        claims: {
          sub: user.id,
          email: user.email,
          email_verified: user.emailVerified,
          name: user.name,
          role: (user as BanFields).role ?? DEFAULT_ROLE,
          auth_method: "api_key",
          key_id: apiKey.id,
        },
        expiresAt: apiKey.expiresAt ? new Date(apiKey.expiresAt).getTime() : null,
        counted: (apiKey.rateLimitEnabled && apiKey.rateLimitMax !== null && apiKey.rateLimitTimeWindow !== null) || apiKey.remaining !== null,
      };
    };

    return {
      async handle(method, url, headers, body) {
        // A sign-out while Redis is away could not remove its copy there, and that copy would be
        // valid again once Redis is back with its data: refuse it before anything is removed.
        if (redis && method === "POST" && SESSION_ENDING_ROUTES.test(new URL(url).pathname) && !(await redis.ping())) {
          return sessionStoreUnavailable();
        }
        const { value: response, failed } = await mailer.tracking(() => auth.handler(new Request(url, { method, headers, body })));
        // Better Auth answers "check your e-mail" even when the send failed (it only logs it).
        if (failed) return emailNotSent();
        return {
          status: response.status,
          headers: [...response.headers],
          body: response.body ? await response.arrayBuffer() : null,
        };
      },
      async getSession(credential, refresh) {
        let result;
        try {
          result = await auth.api.getSession({
            // A bearer token is turned into the session cookie by Better Auth's bearer plugin.
            headers: new Headers("cookie" in credential ? { cookie: credential.cookie } : { authorization: `Bearer ${credential.bearer}` }),
            returnHeaders: true,
            query: refresh ? undefined : { disableRefresh: true },
          });
        } catch (error) {
          // Better Auth removes an expired session it finds; while Redis is away that removal
          // fails (src/db/redis.ts). The session is expired either way.
          if (error instanceof APIError && error.status === "SERVICE_UNAVAILABLE") return null;
          throw error;
        }
        if (!result.response) return null;
        const { user, session } = result.response;
        // A ban ends the user's sessions (Better Auth's admin plugin deletes them); a session
        // that survived one (a ban written to the database by other means) is refused too.
        if (isBanned(user as BanFields)) return null;
        return {
          claims: { sub: user.id, email: user.email, email_verified: user.emailVerified, name: user.name, role: (user as BanFields).role ?? DEFAULT_ROLE, auth_method: "session", sid: session.id },
          expiresAt: new Date(session.expiresAt).getTime(),
          // A native app's token does not change on a refresh, and it has no cookie jar.
          setCookies: "cookie" in credential ? result.headers.getSetCookie() : [],
        };
      },
      async verifyApiKey(key) {
        const result = await auth.api.verifyApiKey({ body: { key } });
        if (!result.valid || !result.key) {
          const code = result.error?.code;
          // The plugin answers a database failure as an invalid key: a key holder must get
          // the 503 of an outage, not a 401 (and open sockets must not be closed for it).
          if (code === "INVALID_API_KEY") await sql`select 1`.execute(db.kysely);
          if (code === "RATE_LIMITED") {
            const tryAgainInMs = Number((result.error as { details?: { tryAgainIn?: unknown } }).details?.tryAgainIn ?? 1000);
            return { ok: false, reason: "rate-limited", retryAfterSeconds: Math.max(1, Math.ceil(tryAgainInMs / 1000)) };
          }
          if (code === "USAGE_EXCEEDED") return { ok: false, reason: "usage-exceeded" };
          return { ok: false, reason: "invalid" };
        }
        return ownerClaims(result.key as unknown as ApiKeyRow);
      },
      async apiKeyStatus(key) {
        const row = await context.adapter.findOne<ApiKeyRow>({ model: "apikey", where: [{ field: "key", value: await defaultKeyHasher(key) }] });
        if (!row || row.enabled === false) return { ok: false, reason: "invalid" };
        if (row.expiresAt && new Date(row.expiresAt).getTime() <= Date.now()) return { ok: false, reason: "invalid" };
        if (row.remaining === 0 && row.refillAmount === null) return { ok: false, reason: "usage-exceeded" };
        return ownerClaims(row);
      },
      async signingKey() {
        const newest = await newestRow();
        const newestExpiry = newest ? expiry(newest) : null;
        if (!newest || (newestExpiry !== null && newestExpiry <= Date.now())) {
          // Expired since start-up (rotation): the first instance to notice mints the next key.
          await db.withStartupLock(provisionSigningKey);
        }
        const [latest, previous] = await newestRows(2);
        if (!latest) throw new Error("Better Auth did not create a signing key");
        // Publish first, sign later: backends cache the JWKS (jose refetches at most every
        // 30 s), so a key younger than the publish delay is not used yet while the previous
        // one, still published for Better Auth's grace period, can sign.
        const publishedAt = new Date(latest.createdAt).getTime() + config.jwksPublishDelaySeconds * 1000;
        const row = previous && publishedAt > Date.now() ? previous : latest;
        const privateJwk = await symmetricDecrypt({ key: context.secretConfig, data: JSON.parse(row.privateKey) });
        return {
          kid: row.id,
          alg: row.alg ?? "EdDSA",
          privateJwk,
          expiresAt: row === previous ? publishedAt : expiry(row),
        };
      },
      async newestKeyId() {
        const row = await db.kysely.selectFrom("jwks").select("id").orderBy("createdAt", "desc").limit(1).executeTakeFirst();
        return (row?.id as string | undefined) ?? null;
      },
      async openApiSchema() {
        const schema = await auth.api.generateOpenAPISchema();
        const paths = Object.fromEntries(Object.entries(schema.paths ?? {}).map(([path, item]) => [AUTH_BASE_PATH + path, item]));
        return { paths, components: schema.components };
      },
      async ping() {
        await sql`select 1`.execute(db.kysely);
        return true as const;
      },
      pingRedis: async () => (redis ? redis.ping() : null),
      async close() {
        redis?.close();
        await db.close();
      },
    };
  } catch (error) {
    await opened.close();
    throw error;
  }
}

/** What the gateway reads of a row of the API-key plugin's table. */
interface ApiKeyRow {
  id: string;
  referenceId: string;
  enabled: boolean;
  expiresAt: Date | string | null;
  remaining: number | null;
  refillAmount: number | null;
  rateLimitEnabled: boolean;
  rateLimitMax: number | null;
  rateLimitTimeWindow: number | null;
}

/** Banned, and the ban has not run out (Better Auth's admin plugin lifts an expired ban at the next sign-in). */
/** The admin plugin's fields on a user row. */
export interface BanFields {
  role?: string | null;
  banned?: boolean | null;
  banExpires?: Date | string | null;
}

export function isBanned(user: BanFields): boolean {
  if (!user.banned) return false;
  return !user.banExpires || new Date(user.banExpires).getTime() > Date.now();
}

/** A mail the request needed could not be sent (the log says why): nothing pretends it was. */
function emailNotSent(): SerializedResponse {
  return {
    status: 503,
    headers: [["content-type", "application/json; charset=utf-8"], ["retry-after", "60"]],
    body: new TextEncoder().encode(JSON.stringify({ error: "Could not send the e-mail, try again later", code: "EMAIL_NOT_SENT" })).buffer as ArrayBuffer,
  };
}

/** Seconds a client is asked to wait before retrying a sign-out refused during a Redis outage. */
const STORE_RETRY_AFTER_SECONDS = 5;

function sessionStoreUnavailable(): SerializedResponse {
  return {
    status: 503,
    headers: [
      ["content-type", "application/json; charset=utf-8"],
      ["retry-after", String(STORE_RETRY_AFTER_SECONDS)],
    ],
    body: new TextEncoder().encode(JSON.stringify({ error: "Session store unavailable; nothing was changed, try again shortly" })).buffer as ArrayBuffer,
  };
}
