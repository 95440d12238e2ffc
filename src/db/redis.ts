import { RedisClient } from "bun";
import type { Logger } from "../ops/log";

/**
 * Better Auth's secondary storage on Redis (Bun's built-in client), for sessions and
 * rate-limit counters shared by every instance.
 *
 * A Redis outage must not log everyone out. Sessions are also kept in the database
 * (`storeSessionInDatabase`), and every failed read here answers "not found", which makes
 * Better Auth fall back to the database. Failed writes and deletes are logged and skipped,
 * and rate-limit counters fail open (each request counts as the first). Commands fail fast
 * instead of queueing while Redis is away, and the client reconnects by itself.
 */
export function createRedisStorage(url: string, logger: Logger) {
  const client = new RedisClient(url, {
    autoReconnect: true,
    enableOfflineQueue: false,
    connectionTimeout: 1000,
    maxRetries: 4_294_967_295, // keep reconnecting for as long as the process lives
  });
  let lastWarning = 0;
  const degraded = (operation: string, error: unknown) => {
    // One line per 10 s at most while Redis is away, not one per request.
    if (Date.now() - lastWarning < 10_000) return;
    lastWarning = Date.now();
    logger.warn("redis unavailable: falling back to the database", { operation, error: (error as Error)?.name });
  };
  const attempt = async <T>(operation: string, run: () => Promise<T>, fallback: T): Promise<T> => {
    try {
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
      delete: (key: string) => attempt("delete", async () => void (await client.del(key)), undefined),
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
    /** Connects before the first request (commands fail fast while disconnected); a Redis that is down is only logged. */
    async connect(): Promise<void> {
      try {
        await client.connect();
      } catch (error) {
        degraded("connect", error);
      }
    },
    async ping(): Promise<boolean> {
      try {
        return (await client.send("PING", [])) === "PONG";
      } catch {
        return false;
      }
    },
    close: () => client.close(),
  };
}

export type RedisStorage = ReturnType<typeof createRedisStorage>;
