import { APIError } from "better-auth/api";
import { RedisClient } from "bun";
import type { Logger } from "../ops/log";

/** Keys whose removal failed, kept to remove them once Redis answers again (a bound, not a queue for ever). */
const MAX_PENDING_DELETES = 10_000;

/** How often removals that failed are tried again while Redis is away. */
const PENDING_RETRY_MS = 1000;

/**
 * Better Auth's secondary storage on Redis (Bun's built-in client), for sessions and
 * rate-limit counters shared by every instance.
 *
 * A Redis outage must not log everyone out. Sessions are also kept in the database
 * (`storeSessionInDatabase`), and every failed read here answers "not found", which makes
 * Better Auth fall back to the database. Failed writes are logged and skipped, and rate-limit
 * counters fail open (each request counts as the first). Commands fail fast instead of
 * queueing while Redis is away, and the client reconnects by itself.
 *
 * Removals are the exception: a sign-out whose removal is skipped would be undone when Redis
 * comes back with its data (the copy there would be valid again). So a failed removal throws
 * (Better Auth's sign-out removes the Redis copy before the database row, so nothing is signed
 * out and the client can retry), and the key is also kept and removed as soon as Redis answers
 * again, before this instance reads anything from it, for the flows that remove the database
 * rows first (revoke-sessions).
 */
export function createRedisStorage(url: string, logger: Logger) {
  const client = new RedisClient(url, {
    autoReconnect: true,
    enableOfflineQueue: false,
    connectionTimeout: 1000,
    maxRetries: 4_294_967_295, // keep reconnecting for as long as the process lives
  });
  const pendingDeletes = new Set<string>();
  let lastWarning = 0;
  const degraded = (operation: string, error: unknown) => {
    // One line per 10 s at most while Redis is away, not one per request.
    if (Date.now() - lastWarning < 10_000) return;
    lastWarning = Date.now();
    logger.warn("redis unavailable: falling back to the database", { operation, error: (error as Error)?.name });
  };

  /** Removes the keys whose removal failed; false while Redis is still away. */
  let flushing: Promise<boolean> | undefined;
  const flushPendingDeletes = (): Promise<boolean> => {
    if (pendingDeletes.size === 0) return Promise.resolve(true);
    flushing ??= (async () => {
      try {
        const keys = [...pendingDeletes];
        await client.del(...keys);
        for (const key of keys) pendingDeletes.delete(key);
        logger.info("redis back: removed keys whose removal had failed", { count: keys.length });
        return true;
      } catch (error) {
        degraded("delete", error);
        return false;
      } finally {
        flushing = undefined;
      }
    })();
    return flushing;
  };
  const retry = setInterval(() => void flushPendingDeletes(), PENDING_RETRY_MS);
  retry.unref();

  const attempt = async <T>(operation: string, run: () => Promise<T>, fallback: T): Promise<T> => {
    try {
      // Nothing is read (or written) before the removals that failed are done: a stale copy
      // of a signed-out session must never be served again.
      if (pendingDeletes.size > 0 && !(await flushPendingDeletes())) return fallback;
      return await run();
    } catch (error) {
      degraded(operation, error);
      return fallback;
    }
  };

  return {
    storage: {
      get: (key: string) => attempt("get", () => client.get(key), null),
      getAndDelete: (key: string) => attempt("getdel", () => client.send("GETDEL", [key]) as Promise<string | null>, null),
      set: (key: string, value: string, ttl?: number) =>
        attempt("set", () => (ttl ? client.set(key, value, "EX", Math.max(1, Math.ceil(ttl))) : client.set(key, value)), null),
      async delete(key: string): Promise<void> {
        try {
          if (pendingDeletes.size > 0) await flushPendingDeletes();
          await client.del(key);
        } catch (error) {
          degraded("delete", error);
          if (pendingDeletes.size < MAX_PENDING_DELETES) pendingDeletes.add(key);
          // Better Auth answers an APIError with its status: the sign-out fails visibly.
          throw new APIError("SERVICE_UNAVAILABLE", { message: "Session store unavailable; try again shortly" });
        }
      },
      // INCR and the first EXPIRE in one script, so a window cannot lose its TTL between them.
      increment: (key: string, ttl: number) =>
        attempt(
          "increment",
          () =>
            client.send("EVAL", [
              "local n = redis.call('INCR', KEYS[1]) if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end return n",
              "1",
              key,
              String(Math.max(1, Math.ceil(ttl))),
            ]) as Promise<number>,
          1,
        ),
    },
    /**
     * Connects before the first request (commands fail fast while disconnected); a Redis that is
     * down is only logged. A Redis that is up but serves another database than REDIS_URL names
     * stops start-up: keys must never be written somewhere else silently.
     */
    async connect(): Promise<void> {
      try {
        await client.connect();
      } catch (error) {
        degraded("connect", error);
        return;
      }
      const wanted = redisDatabaseIndex(url);
      const serving = await servedDatabase(client);
      if (serving === "missing") {
        throw new RedisDatabaseMismatch(`REDIS_URL names database ${wanted}, which this Redis server does not have (see its "databases" setting)`);
      }
      if (serving !== undefined && serving !== wanted) {
        throw new RedisDatabaseMismatch(`REDIS_URL names database ${wanted}, but the Redis connection uses database ${serving}`);
      }
    },
    async ping(): Promise<boolean> {
      try {
        return (await client.send("PING", [])) === "PONG";
      } catch {
        return false;
      }
    },
    /** Keys whose removal is still to be done (tests). */
    get pendingDeletes(): number {
      return pendingDeletes.size;
    },
    close() {
      clearInterval(retry);
      client.close();
    },
  };
}

export type RedisStorage = ReturnType<typeof createRedisStorage>;

export class RedisDatabaseMismatch extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RedisDatabaseMismatch";
  }
}

/** The database index REDIS_URL names in its path (`redis://host:6379/5`), 0 without one. config.ts has checked the path. */
export function redisDatabaseIndex(url: string): number {
  const path = new URL(url).pathname.replace(/^\//, "");
  return path === "" ? 0 : Number(path);
}

/**
 * The database the connection uses, from CLIENT INFO (Redis 6.2+); "missing" when the server
 * refuses the index (Bun's client then fails every command); undefined when it cannot tell.
 */
async function servedDatabase(client: RedisClient): Promise<number | "missing" | undefined> {
  try {
    const info = String(await client.send("CLIENT", ["INFO"]));
    const match = /(?:^|\s)db=(\d+)/.exec(info);
    return match ? Number(match[1]) : undefined;
  } catch (error) {
    if (/DB index/i.test(String((error as Error)?.message))) return "missing";
    return undefined; // an older Redis, or CLIENT disabled: Bun's client selects the database itself
  }
}
