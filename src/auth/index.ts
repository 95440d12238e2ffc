import type { SecondaryStorage } from "@better-auth/core/db";
import { betterAuth } from "better-auth";
import { getMigrations } from "better-auth/db/migration";
import { genericOAuth, jwt, openAPI } from "better-auth/plugins";
import type { Config } from "../config";
import type { GatewayDatabase } from "../db";
import type { Mailer } from "../email/mailer";
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
  /** Verification and reset mail; undefined (migrate) or delivery "none": nothing is offered that needs it. */
  mailer?: Mailer;
}

export function createAuth({ config, db, secret, logger, secondaryStorage, mailer }: AuthDeps) {
  const origin = config.authUrl.origin;
  const pages = config.pages && `${origin}${config.pages.path}`;
  const sends = mailer !== undefined && mailer.delivery !== "none";
  // Links in mail are built from BETTER_AUTH_URL (Better Auth's baseURL is that origin too),
  // never from the request's Host: a poisoned Host must not put another domain in a reset mail.
  const social = Object.fromEntries(
    config.providers
      .filter((provider) => provider.kind !== "oidc")
      .map((provider) => [provider.id, { clientId: provider.clientId, clientSecret: provider.clientSecret }]),
  );
  const oidc = config.providers.filter((provider) => provider.kind === "oidc");
  return betterAuth({
    appName: "authgate",
    baseURL: origin,
    basePath: AUTH_BASE_PATH,
    secret,
    database: { db: db.kysely, type: db.type },
    emailAndPassword: {
      enabled: true,
      requireEmailVerification: config.email.requireVerification,
      // Better Auth's defaults, said here: a reset token is single use and lives an hour, and a
      // reset ends the user's other sessions.
      resetPasswordTokenExpiresIn: 3600,
      revokeSessionsOnPasswordReset: true,
      ...(sends && {
        async sendResetPassword({ user, url, token }) {
          const link = pages ? `${pages}/reset-password?token=${encodeURIComponent(token)}` : url;
          await mailer.send({ kind: "reset-password", to: user.email, name: user.name, link });
        },
      }),
    },
    ...(sends && {
      emailVerification: {
        sendOnSignUp: config.email.requireVerification,
        autoSignInAfterVerification: true,
        expiresIn: 24 * 3600,
        async sendVerificationEmail({ user, url, token }) {
          const link = pages ? `${pages}/verify-email?token=${encodeURIComponent(token)}` : url;
          await mailer.send({ kind: "verification", to: user.email, name: user.name, link });
        },
      },
    }),
    socialProviders: social,
    account: {
      // Linking by e-mail only where the provider says it verified the address and the local
      // account verified it too (Better Auth's requireLocalEmailVerified); no provider is
      // trusted blindly, different e-mails are never linked, and the last way to sign in
      // cannot be unlinked.
      accountLinking: { enabled: true, trustedProviders: [], allowDifferentEmails: false, requireLocalEmailVerified: true, allowUnlinkingAll: false },
    },
    // A provider's callback that fails before its state is read (a tampered or replayed
    // state) ends on the sign-in page with `?error=`, not on Better Auth's bare error page.
    ...(pages && { onAPIError: { errorURL: `${pages}/sign-in` } }),
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
    // Better Auth turns its origin and CSRF checks off by itself when NODE_ENV=test or TEST is
    // set (a redirectTo on another origin then passes): on, whatever the environment says.
    advanced: { ipAddress: { ipAddressHeaders: [CLIENT_IP_HEADER] }, disableOriginCheck: false, disableCSRFCheck: false },
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
      ...(oidc.length > 0
        ? [
            genericOAuth({
              config: oidc.map((provider) => ({
                providerId: provider.id,
                discoveryUrl: `${provider.issuer}/.well-known/openid-configuration`,
                clientId: provider.clientId,
                clientSecret: provider.clientSecret,
                scopes: [...provider.scopes],
                // Authorization code with PKCE; the ID token's signature, issuer and nonce are
                // checked against the discovered JWKS.
                pkce: true,
              })),
            }),
          ]
        : []),
    ],
  });
}

export type Auth = ReturnType<typeof createAuth>;

/** Creates or alters Better Auth's tables; running it on a migrated database changes nothing. */
export async function migrate(auth: Auth): Promise<void> {
  const { runMigrations } = await getMigrations(auth.options);
  await runMigrations();
}
