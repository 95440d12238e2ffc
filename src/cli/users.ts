/**
 * `authgate user …` and `authgate sessions …`: what Better Auth's admin plugin does on its
 * endpoints (node_modules/better-auth/dist/plugins/admin/routes.mjs), done through the same
 * internal adapter from the command line. A change lands in the database (and in Redis, with
 * REDIS_URL); running instances see it when their cached copy of a session or key runs out.
 */
import { DEFAULT_ROLE } from "../auth/index";
import { isBanned } from "../auth/service";
import type { AdminContext } from "./context";
import { CommandError } from "./values";

/** A user row with the admin plugin's fields. */
interface UserRow {
  id: string;
  email: string;
  name: string;
  emailVerified: boolean;
  createdAt: Date;
  updatedAt: Date;
  role?: string | null;
  banned?: boolean | null;
  banReason?: string | null;
  banExpires?: Date | null;
}

export interface UserView {
  id: string;
  email: string;
  name: string;
  role: string;
  emailVerified: boolean;
  banned: boolean;
  banReason: string | null;
  banExpires: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface SessionView {
  id: string;
  createdAt: Date;
  updatedAt: Date;
  expiresAt: Date;
  ipAddress: string | null;
  userAgent: string | null;
}

/** Better Auth's admin plugin writes this when a ban gives no reason. */
const DEFAULT_BAN_REASON = "No reason";
/** Rows read per query when listing everything. */
const PAGE = 1000;

function view(user: UserRow): UserView {
  return {
    id: user.id,
    email: user.email,
    name: user.name,
    role: user.role ?? DEFAULT_ROLE,
    emailVerified: Boolean(user.emailVerified),
    // A ban that has run out is lifted by Better Auth at the next sign-in; it no longer counts.
    banned: isBanned(user),
    banReason: user.banReason ?? null,
    banExpires: user.banExpires ? new Date(user.banExpires) : null,
    createdAt: new Date(user.createdAt),
    updatedAt: new Date(user.updatedAt),
  };
}

export async function findUser(ctx: AdminContext, email: string): Promise<UserRow> {
  const found = await ctx.context.internalAdapter.findUserByEmail(email);
  if (!found) throw new CommandError(`no user with e-mail ${email}`);
  return found.user as UserRow;
}

function checkPassword(ctx: AdminContext, password: string): void {
  const { minPasswordLength, maxPasswordLength } = ctx.context.password.config;
  if (password.length < minPasswordLength) throw new CommandError(`the password is too short: at least ${minPasswordLength} characters`);
  if (password.length > maxPasswordLength) throw new CommandError(`the password is too long: at most ${maxPasswordLength} characters`);
}

export interface AddedUser extends UserView {
  hasPassword: boolean;
  /** A link that sets the first password (an hour, single use), when e-mail is set up and no password was given. */
  resetLink: string | null;
  resetLinkExpiresAt: Date | null;
}

/**
 * Better Auth's admin create-user, called server-side (no session needed): the password, if
 * any, is hashed by Better Auth and stored as a credential account. Without one, a reset link
 * is asked for as the reset page would (Better Auth's reset-password creates the credential
 * account for a user who has none).
 */
export async function addUser(
  ctx: AdminContext,
  { email, name, role, password }: { email: string; name: string; role?: string; password?: string },
): Promise<AddedUser> {
  if (password !== undefined) checkPassword(ctx, password);
  // Any role name: no `roles` are configured, so the admin plugin checks none (its type lists its two defaults).
  const { user } = await ctx.auth.api.createUser({ body: { email, name, password, role: (role ?? DEFAULT_ROLE) as "user" } });
  const added = { ...view(user as UserRow), hasPassword: password !== undefined, resetLink: null, resetLinkExpiresAt: null };
  if (password !== undefined) return added;
  if (ctx.config.email.delivery === "none") {
    ctx.note(
      `${added.email} has no password: they can sign in only through an identity provider, or once given one with \`authgate user set-password ${added.email} --password-stdin\` (no e-mail is set up for a reset link)`,
    );
    return added;
  }
  const before = ctx.mails.length;
  const { failed } = await ctx.mailer.tracking(() => ctx.auth.api.requestPasswordReset({ body: { email: added.email } }));
  const mail = ctx.mails.slice(before).find((sent) => sent.kind === "reset-password" && sent.to === added.email);
  if (!mail) throw new CommandError(`the user was created, but Better Auth made no reset link for ${added.email}`);
  const lifetime = ctx.context.options.emailAndPassword?.resetPasswordTokenExpiresIn ?? 3600;
  if (failed) ctx.note(`the reset mail to ${added.email} could not be sent (see the log above): pass the link on yourself`);
  else if (ctx.config.email.delivery === "smtp") ctx.note(`the reset link was also mailed to ${added.email}`);
  return { ...added, resetLink: mail.link, resetLinkExpiresAt: new Date(Date.now() + lifetime * 1000) };
}

/** What the admin plugin's set-user-password does: hash, then update or create the credential account. */
export async function setPassword(ctx: AdminContext, email: string, password: string): Promise<UserView> {
  checkPassword(ctx, password);
  const user = await findUser(ctx, email);
  const hash = await ctx.context.password.hash(password);
  if (await ctx.context.internalAdapter.findCredentialAccount(user.id)) await ctx.context.internalAdapter.updatePassword(user.id, hash);
  else await ctx.context.internalAdapter.createAccount({ userId: user.id, providerId: "credential", accountId: user.id, password: hash });
  return view(user);
}

export async function listUsers(ctx: AdminContext): Promise<UserView[]> {
  const users: UserView[] = [];
  for (let offset = 0; ; offset += PAGE) {
    const page = await ctx.context.internalAdapter.listUsers(PAGE, offset, { field: "createdAt", direction: "asc" });
    users.push(...page.map((user) => view(user as UserRow)));
    if (page.length < PAGE) return users;
  }
}

export interface UserDetails extends UserView {
  /** How they can sign in: "credential" (a password) and the identity providers linked. */
  signInMethods: string[];
  activeSessions: number;
  apiKeys: number;
}

export async function showUser(ctx: AdminContext, email: string): Promise<UserDetails> {
  const user = await findUser(ctx, email);
  const accounts = await ctx.context.internalAdapter.findAccounts(user.id);
  const sessions = await ctx.context.internalAdapter.listSessions(user.id, { onlyActiveSessions: true });
  const apiKeys = await ctx.context.adapter.count({ model: "apikey", where: [{ field: "referenceId", value: user.id }] });
  return {
    ...view(user),
    signInMethods: [...new Set(accounts.map((account) => account.providerId))].sort(),
    activeSessions: sessions.length,
    apiKeys: Number(apiKeys),
  };
}

export async function setRole(ctx: AdminContext, email: string, role: string): Promise<UserView & { previousRole: string }> {
  const user = await findUser(ctx, email);
  const updated = await ctx.context.internalAdapter.updateUser(user.id, { role });
  return { ...view(updated as UserRow), previousRole: user.role ?? DEFAULT_ROLE };
}

/** The admin plugin's ban-user: the flag, reason and end, then every session of the user deleted. */
export async function banUser(
  ctx: AdminContext,
  email: string,
  { reason, until }: { reason?: string; until?: Date },
): Promise<UserView & { sessionsRevoked: number }> {
  const user = await findUser(ctx, email);
  const sessions = await ctx.context.internalAdapter.listSessions(user.id, { onlyActiveSessions: true });
  const updated = await ctx.context.internalAdapter.updateUser(user.id, {
    banned: true,
    banReason: reason || DEFAULT_BAN_REASON,
    banExpires: until ?? null,
    updatedAt: new Date(),
  });
  await ctx.context.internalAdapter.deleteUserSessions(user.id);
  return { ...view(updated as UserRow), sessionsRevoked: sessions.length };
}

/** The admin plugin's unban-user. */
export async function unbanUser(ctx: AdminContext, email: string): Promise<UserView> {
  const user = await findUser(ctx, email);
  const updated = await ctx.context.internalAdapter.updateUser(user.id, { banned: false, banExpires: null, banReason: null, updatedAt: new Date() });
  return view(updated as UserRow);
}

/**
 * The admin plugin's remove-user (sessions, then the user with their accounts), and the
 * user's API keys first: a key outliving its owner would otherwise stay in the table.
 */
export async function deleteUser(ctx: AdminContext, email: string): Promise<{ id: string; email: string; sessionsRevoked: number; apiKeysDeleted: number }> {
  const user = await findUser(ctx, email);
  const sessions = await ctx.context.internalAdapter.listSessions(user.id, { onlyActiveSessions: true });
  const apiKeysDeleted = await ctx.context.adapter.deleteMany({ model: "apikey", where: [{ field: "referenceId", value: user.id }] });
  await ctx.context.internalAdapter.deleteUserSessions(user.id);
  await ctx.context.internalAdapter.deleteUser(user.id);
  return { id: user.id, email: user.email, sessionsRevoked: sessions.length, apiKeysDeleted: Number(apiKeysDeleted) };
}

interface SessionRow {
  id: string;
  token: string;
  createdAt: Date;
  updatedAt: Date;
  expiresAt: Date;
  ipAddress?: string | null;
  userAgent?: string | null;
}

function sessionView(session: SessionRow): SessionView {
  // Never the token: it is the session.
  return {
    id: session.id,
    createdAt: new Date(session.createdAt),
    updatedAt: new Date(session.updatedAt),
    expiresAt: new Date(session.expiresAt),
    ipAddress: session.ipAddress || null,
    userAgent: session.userAgent || null,
  };
}

async function activeSessions(ctx: AdminContext, userId: string): Promise<SessionRow[]> {
  const sessions = (await ctx.context.internalAdapter.listSessions(userId, { onlyActiveSessions: true })) as SessionRow[];
  return sessions.sort((a, b) => new Date(a.createdAt).getTime() - new Date(b.createdAt).getTime());
}

export async function listSessions(ctx: AdminContext, email: string): Promise<SessionView[]> {
  const user = await findUser(ctx, email);
  return (await activeSessions(ctx, user.id)).map(sessionView);
}

/** The admin plugin's revoke-user-sessions (`all`) or revoke-user-session (one, by its id). */
export async function revokeSessions(ctx: AdminContext, email: string, which: { all: true } | { sessionId: string }): Promise<{ revoked: string[] }> {
  const user = await findUser(ctx, email);
  const sessions = await activeSessions(ctx, user.id);
  if ("all" in which) {
    await ctx.context.internalAdapter.deleteUserSessions(user.id);
    return { revoked: sessions.map((session) => session.id) };
  }
  const session = sessions.find((candidate) => candidate.id === which.sessionId);
  if (!session) throw new CommandError(`${user.email} has no active session ${which.sessionId} (see \`authgate sessions list ${user.email}\`)`);
  await ctx.context.internalAdapter.deleteSession(session.token);
  return { revoked: [session.id] };
}
