import type { SecondaryStorage } from "@better-auth/core/db";
import { betterAuth } from "better-auth";
import { getMigrations } from "better-auth/db/migration";
import { jwt, openAPI } from "better-auth/plugins";
import type { Config } from "../config";
import type { GatewayDatabase } from "../db";
import type { Logger } from "../ops/log";
import { CLIENT_IP_HEADER } from "../ops/request-context";

import { AUTH_BASE_PATH } from "./paths";

export { AUTH_BASE_PATH };


export interface AuthDeps {
  config: Config;
  db: GatewayDatabase;
  secret: string;
  /** Better Auth's own messages go to the gateway's log, as JSON lines like the rest. */
  logger: Logger;
  /** Redis-backed secondary storage (REDIS_URL), shared by every instance. */
  secondaryStorage?: SecondaryStorage;
}

export function createAuth({ config, db, secret, logger, secondaryStorage }: AuthDeps) {
  const origin = config.authUrl.origin;
  return betterAuth({
    appName: "authgate",
    baseURL: origin,
    basePath: AUTH_BASE_PATH,
    secret,
    database: { db: db.kysely, type: db.type },
    emailAndPassword: { enabled: true },
    trustedOrigins: [origin, ...config.trustedOrigins],
    telemetry: { enabled: false },
    logger: {
      log(level, message) {
        // Better Auth's extra arguments can carry request data; only its message is kept.
        const text = String(message).replace(/^\[better-auth\]\s*/, "");
        if (level === "error") logger.error(text, { source: "better-auth" });
        else if (level === "warn") logger.warn(text, { source: "better-auth" });
        else if (level === "info") logger.info(text, { source: "better-auth" });
      },
    },
    rateLimit: { enabled: config.rateLimit, storage: secondaryStorage ? "secondary-storage" : "memory" },
    ...(secondaryStorage && {
      secondaryStorage,
      // Sessions stay in the database too: when Redis is unreachable, Better Auth falls back to
      // the database (src/db/redis.ts answers "not found"), so an outage logs nobody out.
      session: { storeSessionInDatabase: true },
    }),
    advanced: { ipAddress: { ipAddressHeaders: [CLIENT_IP_HEADER] } },
    plugins: [
      jwt({
        // The gateway signs backend tokens itself with a cached key (src/token); Better Auth
        // would otherwise sign one more on every get-session call.
        disableSettingJwtHeader: true,
        // Rotation (off by default): a key expires after the interval; the first instance to
        // notice mints the next one under the start-up lock, and old keys stay published for
        // Better Auth's grace period (30 days) so tokens signed with them keep verifying.
        ...(config.jwksRotationSeconds && { jwks: { rotationInterval: config.jwksRotationSeconds } }),
        jwt: {
          issuer: origin,
          audience: origin,
          expirationTime: config.jwtExpiration,
          // The backend gets what it needs to identify the caller, not the whole user row.
          definePayload: ({ user, session }) => ({
            email: user.email,
            email_verified: user.emailVerified,
            name: user.name,
            sid: session.id,
          }),
        },
      }),
      openAPI({ disableDefaultReference: true }),
    ],
  });
}

export type Auth = ReturnType<typeof createAuth>;

/** Creates or alters Better Auth's tables; running it on a migrated database changes nothing. */
export async function migrate(auth: Auth): Promise<void> {
  const { runMigrations } = await getMigrations(auth.options);
  await runMigrations();
}
