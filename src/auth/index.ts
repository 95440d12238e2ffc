import type { SecondaryStorage } from "@better-auth/core/db";
import { betterAuth } from "better-auth";
import { getMigrations } from "better-auth/db/migration";
import { apiKey } from "@better-auth/api-key";
import { generateRandomString } from "better-auth/crypto";
// Each plugin from its own entry point: "better-auth/plugins" loads all of them (≈20 ms more at start-up).
import { admin } from "better-auth/plugins/admin";
import { bearer } from "better-auth/plugins/bearer";
import { genericOAuth } from "better-auth/plugins/generic-oauth";
import { jwt } from "better-auth/plugins/jwt";
import { openAPI } from "better-auth/plugins/open-api";
import type { Config } from "../config";
import type { GatewayDatabase } from "../db";
import type { Mailer } from "../email/mailer";
import type { Logger } from "../ops/log";
import { CLIENT_IP_HEADER } from "../ops/request-context";

import { API_KEY_PREFIX, API_KEY_RANDOM_LENGTH } from "./credential";
import { AUTH_BASE_PATH } from "./paths";

export { AUTH_BASE_PATH };


/** The role of a user nobody gave one (Better Auth's admin plugin). */
export const DEFAULT_ROLE = "user";
/** The rate limit of keys users create for themselves: per key, counted by Better Auth. */
export const SELF_SERVICE_KEY_WINDOW_MS = 60_000;
export const SELF_SERVICE_KEY_MAX_REQUESTS = 600;

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
        // Logged by the plugin for every unknown key; the gateway's request line has the 401,
        // and a database failure behind it is answered (and logged) as a 503.
        if (text.startsWith("Failed to validate API key")) return;
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
            role: (user as { role?: string | null }).role ?? DEFAULT_ROLE,
            auth_method: "session",
            sid: session.id,
          }),
        },
      }),
      openAPI({ disableDefaultReference: true }),
      // Mobile and desktop apps: `set-auth-token` on sign-in, `Authorization: Bearer <token>`
      // after. Only signed tokens (what set-auth-token hands out) are taken, never a bare id.
      bearer({ requireSignature: true }),
      // user.role (default "user"), bans, and the admin endpoints for holders of "admin".
      admin({ defaultRole: DEFAULT_ROLE, adminRoles: ["admin"] }),
      apiKey({
        // Every key starts with the prefix, whatever a caller asked for: the proxy tells keys
        // from session tokens by it, and secret scanners find leaked ones by it.
        customKeyGenerator: () => API_KEY_PREFIX + generateRandomString(API_KEY_RANDOM_LENGTH, "a-z", "A-Z", "0-9"),
        defaultPrefix: API_KEY_PREFIX,
        defaultKeyLength: API_KEY_RANDOM_LENGTH,
        // Listings show the prefix and a few characters, enough to tell keys apart.
        startingCharactersConfig: { shouldStore: true, charactersLength: API_KEY_PREFIX.length + 4 },
        // A key verified by the gateway is not a session: Better Auth's own routes take cookies
        // or bearer session tokens only.
        enableSessionForAPIKeys: false,
        // Keys a signed-in user makes for themselves (POST /api/auth/api-key/create) are
        // limited to this; keys made on the command line have no limit unless given one.
        rateLimit: { enabled: true, timeWindow: SELF_SERVICE_KEY_WINDOW_MS, maxRequests: SELF_SERVICE_KEY_MAX_REQUESTS },
        // Keys may live less than a day (the command line's `--expires 90m`); Better Auth's
        // default refuses any expiry under one day.
        keyExpiration: { minExpiresIn: 0 },
      }),
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

/**
 * Creates or alters Better Auth's tables; running it on a migrated database changes nothing.
 * `onChange` is told first when there is something to create or alter.
 */
export async function migrate(auth: Auth, onChange?: () => void): Promise<void> {
  const { toBeCreated, toBeAdded, runMigrations } = await getMigrations(auth.options);
  if (toBeCreated.length > 0 || toBeAdded.length > 0) onChange?.();
  await runMigrations();
}
