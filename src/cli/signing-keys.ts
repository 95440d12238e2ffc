/**
 * `authgate keys …`: the JWT signing keys in Better Auth's `jwks` table.
 *
 * How a new key reaches running instances (src/token/signing-key.ts, signingKey() in
 * src/auth/service.ts): each instance checks for a newer key every 60 s, and signs with it
 * once it is older than JWKS_PUBLISH_DELAY_SECONDS (until then with the previous key), so that
 * backends caching the JWKS have seen it first. Better Auth keeps publishing a key for its
 * grace period (30 days) after the key expires; `keys prune` removes the keys no token can
 * still need sooner.
 */
import { symmetricDecrypt } from "better-auth/crypto";
import type { AdminContext } from "./context";
import { CommandError } from "./values";

const MODEL = "jwks";
/** Rows read per query when listing everything (Better Auth's own lookups stop at 100). */
const PAGE = 1000;
/** How often running instances look for a newer key (src/app.ts). */
export const KEY_POLL_SECONDS = 60;
/** Slack on top of the computed bound: clock skew between hosts, an instance's slow poll. */
export const PRUNE_MARGIN_SECONDS = 300;

export interface SigningKeyTimes {
  kid: string;
  createdAt: Date;
  expiresAt: Date | null;
}

export interface SigningKeyView extends SigningKeyTimes {
  /** The key instances sign with now. */
  current: boolean;
}

/** Every key, oldest first. */
async function allKeys(ctx: AdminContext): Promise<SigningKeyTimes[]> {
  const keys: SigningKeyTimes[] = [];
  for (let offset = 0; ; offset += PAGE) {
    const page = await ctx.context.adapter.findMany<{ id: string; createdAt: Date; expiresAt: Date | null }>({
      model: MODEL,
      sortBy: { field: "createdAt", direction: "asc" },
      limit: PAGE,
      offset,
    });
    keys.push(...page.map((row) => ({ kid: row.id, createdAt: new Date(row.createdAt), expiresAt: row.expiresAt ? new Date(row.expiresAt) : null })));
    if (page.length < PAGE) return keys;
  }
}

/**
 * The key an instance signs with (signingKey() in src/auth/service.ts): the newest, unless it
 * is younger than the publish delay, then the one before it.
 */
export function currentKey<T extends SigningKeyTimes>(oldestFirst: readonly T[], publishDelaySeconds: number, now = Date.now()): T | undefined {
  const latest = oldestFirst.at(-1);
  const previous = oldestFirst.at(-2);
  if (!latest) return undefined;
  return previous && latest.createdAt.getTime() + publishDelaySeconds * 1000 > now ? previous : latest;
}

export async function listSigningKeys(ctx: AdminContext): Promise<SigningKeyView[]> {
  const keys = await allKeys(ctx);
  const current = currentKey(keys, ctx.config.jwksPublishDelaySeconds);
  return keys.map((key) => ({ ...key, current: key === current }));
}

export interface Rotation {
  /** The new key. */
  kid: string;
  createdAt: Date;
  /** When instances start signing with it, at the latest. */
  signsBy: Date;
  /** The keys that were live and now have expired (they stay published). */
  expired: string[];
}

/**
 * A new key now: every live key expires, and Better Auth mints the next (its signJWT creates
 * a key when it finds no live one: node_modules/better-auth/dist/plugins/jwt/sign.mjs, without
 * any rotation configured). Under the start-up lock, so that an instance provisioning a key at
 * the same moment (on PostgreSQL) waits and then finds this one.
 */
export async function rotateSigningKey(ctx: AdminContext): Promise<Rotation> {
  return ctx.db.withStartupLock(async () => {
    await checkSecret(ctx);
    const before = await allKeys(ctx);
    const now = new Date();
    // Every live key, not only the newest: Better Auth signs with the newest *live* key, so one
    // left live would be picked instead of a new one being minted.
    const live = before.filter((key) => key.expiresAt === null || key.expiresAt > now);
    for (const key of live) {
      await ctx.context.adapter.update({ model: MODEL, where: [{ field: "id", value: key.kid }], update: { expiresAt: now } });
    }
    await ctx.provisionSigningKey();
    const [newest] = await ctx.newestKeys(1);
    if (!newest || before.some((key) => key.kid === newest.id)) throw new CommandError("Better Auth did not mint a new signing key");
    const createdAt = new Date(newest.createdAt);
    const delay = ctx.config.jwksPublishDelaySeconds;
    return {
      kid: newest.id,
      createdAt,
      signsBy: new Date(createdAt.getTime() + Math.max(delay, KEY_POLL_SECONDS) * 1000),
      expired: live.map((key) => key.kid),
    };
  });
}

/**
 * A key minted with another secret could not be decrypted by the instances (Better Auth
 * encrypts private keys with BETTER_AUTH_SECRET): every sign would fail. A development secret
 * kept beside another working directory's ./data is the usual cause.
 */
async function checkSecret(ctx: AdminContext): Promise<void> {
  const [newest] = await ctx.newestKeys(1);
  if (!newest) return;
  try {
    await symmetricDecrypt({ key: ctx.context.secretConfig, data: JSON.parse(newest.privateKey) });
  } catch {
    throw new CommandError("the signing keys were made with another BETTER_AUTH_SECRET: run this with the gateway's own secret");
  }
}

export interface PruneDecision {
  deleted: SigningKeyTimes[];
  kept: (SigningKeyTimes & { reason: "newest" | "current" | "may still verify tokens"; neededUntil: Date | null })[];
}

/**
 * Which keys no live token can still need. Instances sign with key K(i) until they switch to
 * K(i+1), at the latest K(i+1)'s creation + the publish delay + one key poll; a token signed
 * just before lives the JWT lifetime more. K(i) is kept while that moment (plus a margin) is
 * in the future; the newest key and the current one are always kept.
 */
export function decidePrune(
  oldestFirst: readonly SigningKeyTimes[],
  { publishDelaySeconds, jwtLifetimeSeconds, now = Date.now() }: { publishDelaySeconds: number; jwtLifetimeSeconds: number; now?: number },
): PruneDecision {
  const current = currentKey(oldestFirst, publishDelaySeconds, now);
  const bound = (publishDelaySeconds + KEY_POLL_SECONDS + jwtLifetimeSeconds + PRUNE_MARGIN_SECONDS) * 1000;
  const decision: PruneDecision = { deleted: [], kept: [] };
  oldestFirst.forEach((key, i) => {
    const next = oldestFirst[i + 1];
    if (!next) decision.kept.push({ ...key, reason: "newest", neededUntil: null });
    else if (key === current) decision.kept.push({ ...key, reason: "current", neededUntil: null });
    else {
      const neededUntil = next.createdAt.getTime() + bound;
      if (neededUntil > now) decision.kept.push({ ...key, reason: "may still verify tokens", neededUntil: new Date(neededUntil) });
      else decision.deleted.push(key);
    }
  });
  return decision;
}

export async function pruneSigningKeys(ctx: AdminContext): Promise<PruneDecision> {
  return ctx.db.withStartupLock(async () => {
    const decision = decidePrune(await allKeys(ctx), {
      publishDelaySeconds: ctx.config.jwksPublishDelaySeconds,
      jwtLifetimeSeconds: ctx.config.jwtLifetimeSeconds,
    });
    for (const key of decision.deleted) await ctx.context.adapter.delete({ model: MODEL, where: [{ field: "id", value: key.kid }] });
    return decision;
  });
}
