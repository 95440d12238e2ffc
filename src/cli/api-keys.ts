/**
 * `authgate apikey …`: keys made by Better Auth's API-key plugin (server-side, for any user),
 * listed and deleted through its adapter. The key itself is shown once, at creation; the
 * table keeps only its hash and its first characters (`start`).
 */
import type { AdminContext } from "./context";
import { findUser } from "./users";
import { CommandError, type RateLimit } from "./values";

/** The plugin's table. */
const MODEL = "apikey";
/** Rows read per query when listing everything. */
const PAGE = 1000;

interface ApiKeyRow {
  id: string;
  name: string | null;
  start: string | null;
  referenceId: string;
  enabled: boolean;
  createdAt: Date;
  expiresAt: Date | null;
  lastRequest: Date | null;
  rateLimitEnabled: boolean;
  rateLimitMax: number | null;
  rateLimitTimeWindow: number | null;
}

export interface ApiKeyView {
  id: string;
  name: string | null;
  userId: string;
  /** The owner's e-mail; null when the owner no longer exists. */
  email: string | null;
  /** The key's first characters, enough to tell keys apart. */
  start: string | null;
  createdAt: Date;
  expiresAt: Date | null;
  lastRequest: Date | null;
  enabled: boolean;
  /** Better Auth's per-key limit, or null: a key from the command line has none unless given one. */
  rateLimit: RateLimit | null;
}

function view(key: ApiKeyRow, email: string | null): ApiKeyView {
  const limited = key.rateLimitEnabled && key.rateLimitMax !== null && key.rateLimitTimeWindow !== null;
  return {
    id: key.id,
    name: key.name,
    userId: key.referenceId,
    email,
    start: key.start,
    createdAt: new Date(key.createdAt),
    expiresAt: key.expiresAt ? new Date(key.expiresAt) : null,
    lastRequest: key.lastRequest ? new Date(key.lastRequest) : null,
    enabled: Boolean(key.enabled),
    rateLimit: limited ? { max: Number(key.rateLimitMax), windowMs: Number(key.rateLimitTimeWindow) } : null,
  };
}

export async function createApiKey(
  ctx: AdminContext,
  { email, name, expiresIn, rateLimit }: { email: string; name: string; expiresIn?: number; rateLimit?: RateLimit },
): Promise<ApiKeyView & { key: string }> {
  const user = await findUser(ctx, email);
  const created = await ctx.auth.api.createApiKey({
    body: {
      userId: user.id,
      name,
      ...(expiresIn !== undefined && { expiresIn }),
      // Not the self-service default: no limit unless one is asked for.
      rateLimitEnabled: rateLimit !== undefined,
      ...(rateLimit && { rateLimitMax: rateLimit.max, rateLimitTimeWindow: rateLimit.windowMs }),
    },
  });
  return { ...view(created as unknown as ApiKeyRow, user.email), key: created.key };
}

export async function listApiKeys(ctx: AdminContext, email?: string): Promise<ApiKeyView[]> {
  const owner = email === undefined ? undefined : await findUser(ctx, email);
  const keys: ApiKeyRow[] = [];
  for (let offset = 0; ; offset += PAGE) {
    const page = await ctx.context.adapter.findMany<ApiKeyRow>({
      model: MODEL,
      where: owner ? [{ field: "referenceId", value: owner.id }] : [],
      sortBy: { field: "createdAt", direction: "asc" },
      limit: PAGE,
      offset,
    });
    keys.push(...page);
    if (page.length < PAGE) break;
  }
  const emails = new Map<string, string>(owner ? [[owner.id, owner.email]] : []);
  const unknown = [...new Set(keys.map((key) => key.referenceId))].filter((id) => !emails.has(id));
  for (let i = 0; i < unknown.length; i += PAGE) {
    const users = await ctx.context.adapter.findMany<{ id: string; email: string }>({
      model: "user",
      where: [{ field: "id", operator: "in", value: unknown.slice(i, i + PAGE) }],
      limit: PAGE,
    });
    for (const user of users) emails.set(user.id, user.email);
  }
  return keys.map((key) => view(key, emails.get(key.referenceId) ?? null));
}

/** Deletes the key: the next lookup of it fails (instances that cached it stop within SESSION_CACHE_SECONDS). */
export async function revokeApiKey(ctx: AdminContext, id: string): Promise<ApiKeyView> {
  const key = await ctx.context.adapter.findOne<ApiKeyRow>({ model: MODEL, where: [{ field: "id", value: id }] });
  if (!key) throw new CommandError(`no API key with id ${id} (see \`authgate apikey list\`)`);
  const owner = await ctx.context.internalAdapter.findUserById(key.referenceId);
  await ctx.context.adapter.delete({ model: MODEL, where: [{ field: "id", value: id }] });
  return view(key, owner?.email ?? null);
}
