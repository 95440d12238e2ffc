import { Elysia } from "elysia";
import { AUTH_BASE_PATH, IDENTITY_CHANGING_ROUTES } from "../auth/paths";
import type { Identity } from "../auth/identity";
import type { AuthWorker } from "../auth/remote";
import type { Provider } from "../auth/providers";
import type { Config } from "../config";
import { GatewayError } from "../errors";
import { describeError, type Logger } from "../ops/log";
import { CLIENT_IP_HEADER } from "../ops/request-context";
// @ts-ignore: imported as text (the browser's script, embedded in the binary), not as a module.
import clientScript from "./client.js" with { type: "text" };
import { errorMessage, noticeMessage } from "./messages";
import { safeRedirect } from "./redirect";
import { createRenderer, deviceLabel, formToken, formTokenValid, securedHeaders, themeStylesheet, type PageView } from "./respond";
import type { Templates } from "./templates";

/**
 * The sign-in pages under PAGES_PATH: server-rendered HTML whose forms post to the gateway,
 * which calls Better Auth (in the auth worker) with the browser's cookie and answers with a
 * redirect or the page again with a readable message. The pages' script (client.js) only sends
 * the same posts with fetch; without it every form still works.
 */
export interface PagesDeps {
  config: Config;
  templates: Templates;
  auth: Pick<AuthWorker, "handle">;
  logger: Logger;
  /** The client's address as the context stage established it (Better Auth's rate limiter). */
  clientIp(request: Request): string | undefined;
  requestId(request: Request): string;
  /** The gateway's Origin check for unsafe methods (src/proxy/csrf.ts). */
  crossSiteRefused(request: Request): boolean;
  /** The caller's session through the session cache, or null. */
  identify(headers: Headers): Promise<Identity | null>;
  /** After a sign-out or revocation through this instance: its cached sessions are dropped. */
  afterSignOut(): void;
}

interface AuthAnswer {
  status: number;
  setCookies: string[];
  json: Record<string, unknown> | null;
  /** Better Auth's error code, or the page's own for a status without one. */
  code: string | undefined;
}

export function pagesPlugin(deps: PagesDeps) {
  const { config, templates, logger } = deps;
  const P = config.pages!.path;
  const origin = config.authUrl.origin;
  const secure = config.authUrl.protocol === "https:";
  const render = createRenderer(templates, config.theme, P);
  const canMail = config.email.delivery !== "none";
  const providers = config.providers;
  const styleCss = templates["style.css"];
  const themeCss = themeStylesheet(config.theme.brandColor);
  const script = clientScript as unknown as string;

  /** Better Auth at `path`, as the browser: its cookie, user agent and address, the gateway's origin (its own check was done here). */
  async function callAuth(request: Request, method: "GET" | "POST", path: string, body?: object): Promise<AuthAnswer> {
    const headers: [string, string][] = [["origin", origin], ["accept", "application/json"]];
    const cookie = request.headers.get("cookie");
    if (cookie) headers.push(["cookie", cookie]);
    const userAgent = request.headers.get("user-agent");
    if (userAgent) headers.push(["user-agent", userAgent]);
    const ip = deps.clientIp(request);
    if (ip) headers.push([CLIENT_IP_HEADER, ip]);
    if (body) headers.push(["content-type", "application/json"]);
    const encoded = body ? (new TextEncoder().encode(JSON.stringify(body)).buffer as ArrayBuffer) : null;
    let answer;
    try {
      answer = await deps.auth.handle(method, `${origin}${AUTH_BASE_PATH}${path}`, headers, encoded);
    } catch (error) {
      logger.error("sign-in pages: the auth service did not answer", { requestId: deps.requestId(request), ...describeError(error) });
      return { status: 503, setCookies: [], json: null, code: "SERVICE_UNAVAILABLE" };
    }
    if (answer.status < 300 && method === "POST" && IDENTITY_CHANGING_ROUTES.test(path)) deps.afterSignOut();
    let json: Record<string, unknown> | null = null;
    try {
      json = answer.body && answer.body.byteLength > 0 ? JSON.parse(new TextDecoder().decode(answer.body)) : null;
    } catch {
      json = null;
    }
    const setCookies = answer.headers.filter(([name]) => name.toLowerCase() === "set-cookie").map(([, value]) => value);
    let code = typeof json?.code === "string" ? json.code : undefined;
    if (answer.status === 429) code = "RATE_LIMITED";
    else if (answer.status >= 400 && !code) code = answer.status >= 500 ? "SERVICE_UNAVAILABLE" : "VALIDATION_ERROR";
    if (answer.status >= 500) logger.warn("sign-in pages: Better Auth answered an error", { requestId: deps.requestId(request), path, status: answer.status, code });
    return { status: answer.status, setCookies, json, code };
  }

  /** A page, with the security headers, the form token and any cookies Better Auth set. */
  function page(request: Request, name: keyof Templates, view: PageView, status = 200, setCookies: string[] = []): Response {
    const { token, setCookie } = formToken(request.headers.get("cookie"), secure);
    const headers = securedHeaders();
    for (const cookie of setCookies) headers.append("set-cookie", cookie);
    if (setCookie) headers.append("set-cookie", setCookie);
    return new Response(render(name, { ...view, csrf: token }), { status, headers });
  }

  const wantsJson = (request: Request) => (request.headers.get("accept") ?? "").includes("application/json");

  /** Success: the browser goes to `target` (a 303 after a form post; JSON for the pages' script). */
  function go(request: Request, target: string, setCookies: string[] = []): Response {
    const headers = securedHeaders(wantsJson(request) ? { "content-type": "application/json; charset=utf-8" } : { location: target });
    for (const cookie of setCookies) headers.append("set-cookie", cookie);
    if (wantsJson(request)) return new Response(JSON.stringify({ redirect: target }), { status: 200, headers });
    return new Response(null, { status: 303, headers });
  }

  /** Failure: the page again with the message (or, for the script, the message as JSON). */
  function fail(request: Request, name: keyof Templates, view: PageView, status: number, setCookies: string[] = []): Response {
    if (wantsJson(request)) {
      const headers = securedHeaders({ "content-type": "application/json; charset=utf-8" });
      for (const cookie of setCookies) headers.append("set-cookie", cookie);
      return new Response(JSON.stringify({ error: view.error }), { status, headers });
    }
    return page(request, name, view, status, setCookies);
  }

  const statusOf = (answer: AuthAnswer) => (answer.status >= 400 ? answer.status : 400);

  /** A page's form post: its fields, once its origin and token check out (null: refused). */
  async function form(request: Request): Promise<URLSearchParams | null> {
    // Media types are case-insensitive.
    const type = (request.headers.get("content-type") ?? "").toLowerCase();
    if (!type.startsWith("application/x-www-form-urlencoded")) return null;
    const fields = new URLSearchParams(await request.text());
    // `Origin: null` is what browsers send from a no-referrer page: the token decides then.
    const originRefused = request.headers.get("origin") !== "null" && deps.crossSiteRefused(request);
    if (originRefused || !formTokenValid(request.headers.get("cookie"), fields.get("csrf"), secure)) {
      logger.info("sign-in pages: form post refused", { requestId: deps.requestId(request), reason: "origin or form token" });
      return null;
    }
    return fields;
  }

  function formExpired(request: Request, name: keyof Templates, view: PageView): Response {
    return fail(request, name, { ...view, error: errorMessage("FORM_EXPIRED") }, 403);
  }

  const targetOf = (value: string | null) => safeRedirect(value, origin);
  const withRedirect = (path: string, target: string) => (target === "/" ? path : `${path}?redirect=${encodeURIComponent(target)}`);
  /** The "check your inbox" page, keeping where the user was going. */
  const checkInbox = (target: string) => `${P}/verify-email?sent=1${target === "/" ? "" : `&redirect=${encodeURIComponent(target)}`}`;
  const providerLinks = (target: string) =>
    providers.map((provider) => ({ id: provider.id, name: provider.name, href: withRedirect(`${P}/sign-in/provider/${provider.id}`, target) }));

  function signInView(url: URL, target: string, extra: Partial<PageView> = {}): PageView {
    return {
      title: "Sign in",
      error: errorMessage(url.searchParams.get("error")),
      notice: noticeMessage(url.searchParams.get("notice")),
      redirect: target,
      query: target === "/" ? "" : `?redirect=${encodeURIComponent(target)}`,
      providers: providerLinks(target),
      hasProviders: providers.length > 0,
      canReset: canMail,
      ...extra,
    };
  }

  function signUpView(target: string, extra: Partial<PageView> = {}): PageView {
    return {
      title: "Create an account",
      redirect: target,
      query: target === "/" ? "" : `?redirect=${encodeURIComponent(target)}`,
      providers: providerLinks(target),
      hasProviders: providers.length > 0,
      ...extra,
    };
  }

  /** Starts a provider's sign-in (or, with `link`, linking to the signed-in user): Better Auth answers the provider's URL. */
  async function startProvider(request: Request, provider: Provider, target: string, link: boolean): Promise<Response> {
    const errorTo = link ? `${P}/account` : withRedirect(`${P}/sign-in`, target);
    // OpenID providers are social providers to Better Auth 1.7 (its generic OAuth plugin registers them so).
    const body = { provider: provider.id, callbackURL: target, errorCallbackURL: errorTo, newUserCallbackURL: target };
    const path = link ? "/link-social" : "/sign-in/social";
    const answer = await callAuth(request, "POST", path, body);
    const url = typeof answer.json?.url === "string" ? answer.json.url : undefined;
    if (answer.status !== 200 || !url) {
      // An OpenID provider whose discovery cannot be read, most often.
      logger.warn("sign-in pages: a provider's sign-in could not start", { requestId: deps.requestId(request), provider: provider.id, status: answer.status, code: answer.code });
      const code = answer.code === "RATE_LIMITED" || answer.code === "SESSION_NOT_FRESH" || answer.code === "SESSION_EXPIRED" ? answer.code : "PROVIDER_UNAVAILABLE";
      return new Response(null, { status: 303, headers: securedHeaders({ location: `${errorTo}${errorTo.includes("?") ? "&" : "?"}error=${code}` }) });
    }
    const headers = securedHeaders({ location: url });
    for (const cookie of answer.setCookies) headers.append("set-cookie", cookie);
    return new Response(null, { status: 302, headers });
  }

  interface SessionInfo {
    user: { id: string; email: string; name: string; emailVerified: boolean };
    session: { id: string };
  }
  const sessionOf = async (request: Request): Promise<SessionInfo | null> => {
    const answer = await callAuth(request, "GET", "/get-session");
    return answer.status === 200 && answer.json && typeof answer.json === "object" && "user" in answer.json ? (answer.json as unknown as SessionInfo) : null;
  };
  const toSignIn = (target: string) => new Response(null, { status: 302, headers: securedHeaders({ location: withRedirect(`${P}/sign-in`, target) }) });
  const notFound = (request: Request) => page(request, "message.html", { title: "Page not found", text: "There is no page at this address.", back: `${P}/sign-in`, backLabel: "Go to sign-in" }, 404);

  async function accountPage(request: Request, extra: Partial<PageView> = {}, status = 200): Promise<Response> {
    const current = await sessionOf(request);
    if (!current) return toSignIn(`${P}/account`);
    const [sessionsAnswer, accountsAnswer] = await Promise.all([callAuth(request, "GET", "/list-sessions"), callAuth(request, "GET", "/list-accounts")]);
    const sessions = Array.isArray(sessionsAnswer.json)
      ? (sessionsAnswer.json as { id: string; userAgent?: string; ipAddress?: string; createdAt: string }[]).map((session) => ({
          id: session.id,
          device: deviceLabel(session.userAgent),
          ip: session.ipAddress || "unknown address",
          createdAt: new Date(session.createdAt).toISOString().slice(0, 16).replace("T", " ") + " UTC",
          current: session.id === current.session.id,
        }))
      : [];
    const accounts = Array.isArray(accountsAnswer.json) ? (accountsAnswer.json as { providerId: string }[]) : [];
    const url = new URL(request.url);
    return page(
      request,
      "account.html",
      {
        title: "Your account",
        error: errorMessage(url.searchParams.get("error")),
        notice: noticeMessage(url.searchParams.get("notice")),
        user: current.user,
        canMail,
        hasPassword: accounts.some((account) => account.providerId === "credential"),
        sessions,
        sessionsUnavailable: Array.isArray(sessionsAnswer.json) ? undefined : errorMessage(sessionsAnswer.code),
        hasProviders: providers.length > 0,
        methods: providers.map((provider) => ({
          id: provider.id,
          name: provider.name,
          linked: accounts.some((account) => account.providerId === provider.id),
          linkHref: `${P}/account/link/${provider.id}?csrf=${formToken(request.headers.get("cookie"), secure).token}`,
        })),
        ...extra,
      },
      status,
    );
  }

  /** An account-page form: signed in and a valid post, or the answer to give instead. */
  async function accountForm(request: Request): Promise<{ fields: URLSearchParams } | { response: Response }> {
    const fields = await form(request);
    if (!fields) return { response: wantsJson(request) ? fail(request, "account.html", { title: "Your account", error: errorMessage("FORM_EXPIRED") }, 403) : await accountPage(request, { error: errorMessage("FORM_EXPIRED") }, 403) };
    return { fields };
  }

  async function accountFailure(request: Request, answer: AuthAnswer): Promise<Response> {
    if (wantsJson(request)) return fail(request, "account.html", { title: "Your account", error: errorMessage(answer.code) }, statusOf(answer));
    return accountPage(request, { error: errorMessage(answer.code) }, statusOf(answer));
  }

  const asset = (body: string, type: string) => () =>
    new Response(body, { headers: { "content-type": type, "cache-control": "no-cache", "x-content-type-options": "nosniff" } });

  return new Elysia({ name: "authgate/pages", prefix: P })
    .get("/assets/style.css", asset(styleCss, "text/css; charset=utf-8"))
    .get("/assets/theme.css", asset(themeCss, "text/css; charset=utf-8"))
    .get("/assets/pages.js", asset(script, "text/javascript; charset=utf-8"))
    .get("", async ({ request }) => {
      const signedIn = (await deps.identify(request.headers)) !== null;
      return new Response(null, { status: 302, headers: securedHeaders({ location: `${P}/${signedIn ? "account" : "sign-in"}` }) });
    })
    .get("/sign-in", async ({ request }) => {
      const url = new URL(request.url);
      const target = targetOf(url.searchParams.get("redirect"));
      // Signed in already (a bookmarked sign-in page, a second tab): on to where they were going.
      if (!url.searchParams.has("error") && (await deps.identify(request.headers))) return go(request, target);
      return page(request, "sign-in.html", signInView(url, target));
    })
    .post(
      "/sign-in",
      async ({ request }) => {
        const url = new URL(request.url);
        const fields = await form(request);
        const target = targetOf(fields?.get("redirect") ?? null);
        if (!fields) return formExpired(request, "sign-in.html", signInView(url, target));
        const email = fields.get("email") ?? "";
        const answer = await callAuth(request, "POST", "/sign-in/email", { email, password: fields.get("password") ?? "", callbackURL: target });
        if (answer.status === 200) return go(request, target, answer.setCookies);
        const resend = answer.code === "EMAIL_NOT_VERIFIED" && canMail;
        return fail(request, "sign-in.html", signInView(url, target, { error: errorMessage(answer.code), email, resend, notice: undefined }), statusOf(answer), answer.setCookies);
      },
      { parse: "none" },
    )
    .get("/sign-in/provider/:id", async ({ request, params }) => {
      const provider = providers.find((candidate) => candidate.id === params.id);
      if (!provider) return notFound(request);
      return startProvider(request, provider, targetOf(new URL(request.url).searchParams.get("redirect")), false);
    })
    .get("/sign-up", ({ request }) => page(request, "sign-up.html", signUpView(targetOf(new URL(request.url).searchParams.get("redirect")))))
    .post(
      "/sign-up",
      async ({ request }) => {
        const fields = await form(request);
        const target = targetOf(fields?.get("redirect") ?? null);
        if (!fields) return formExpired(request, "sign-up.html", signUpView(target));
        const name = (fields.get("name") ?? "").trim();
        const email = fields.get("email") ?? "";
        const answer = await callAuth(request, "POST", "/sign-up/email", { name, email, password: fields.get("password") ?? "", callbackURL: target });
        if (answer.status === 200) {
          // With REQUIRE_EMAIL_VERIFICATION there is no session yet: the mail went out.
          const signedIn = answer.setCookies.some((cookie) => cookie.includes("session_token="));
          return go(request, signedIn ? target : checkInbox(target), answer.setCookies);
        }
        return fail(request, "sign-up.html", signUpView(target, { error: errorMessage(answer.code), name, email }), statusOf(answer), answer.setCookies);
      },
      { parse: "none" },
    )
    .get("/forgot-password", ({ request }) => page(request, "forgot-password.html", { title: "Reset your password", available: canMail }, canMail ? 200 : 404))
    .post(
      "/forgot-password",
      async ({ request }) => {
        const view = { title: "Reset your password", available: canMail };
        const fields = await form(request);
        if (!fields) return formExpired(request, "forgot-password.html", view);
        if (!canMail) return fail(request, "forgot-password.html", { ...view, error: errorMessage("RESET_PASSWORD_DISABLED") }, 404);
        const email = fields.get("email") ?? "";
        const answer = await callAuth(request, "POST", "/request-password-reset", { email, redirectTo: `${P}/reset-password` });
        if (answer.status === 200) return go(request, `${P}/sign-in?notice=reset-sent`);
        return fail(request, "forgot-password.html", { ...view, email, error: errorMessage(answer.code) }, statusOf(answer));
      },
      { parse: "none" },
    )
    .get("/reset-password", ({ request }) => {
      const url = new URL(request.url);
      return page(request, "reset-password.html", { title: "Choose a new password", token: url.searchParams.get("token") ?? "", error: errorMessage(url.searchParams.get("error")) });
    })
    .post(
      "/reset-password",
      async ({ request }) => {
        const fields = await form(request);
        const token = fields?.get("token") ?? "";
        const view = { title: "Choose a new password", token };
        if (!fields) return formExpired(request, "reset-password.html", view);
        const answer = await callAuth(request, "POST", "/reset-password", { token, newPassword: fields.get("newPassword") ?? "" });
        if (answer.status === 200) return go(request, `${P}/sign-in?notice=password-reset`, answer.setCookies);
        return fail(request, "reset-password.html", { ...view, error: errorMessage(answer.code) }, statusOf(answer));
      },
      { parse: "none" },
    )
    .get("/verify-email", async ({ request }) => {
      const url = new URL(request.url);
      const target = targetOf(url.searchParams.get("redirect"));
      const token = url.searchParams.get("token");
      const view = { title: "Verify your e-mail", redirect: target, sent: url.searchParams.has("sent"), notice: url.searchParams.has("sent") ? noticeMessage("verification-sent") : undefined };
      if (!token) return page(request, "verify-email.html", view);
      const answer = await callAuth(request, "GET", `/verify-email?token=${encodeURIComponent(token)}`);
      if (answer.status === 200) return page(request, "verify-email.html", { ...view, title: "E-mail verified", verified: true, notice: undefined }, 200, answer.setCookies);
      return page(request, "verify-email.html", { ...view, notice: undefined, error: errorMessage(answer.code) }, statusOf(answer));
    })
    .post(
      "/verify-email/resend",
      async ({ request }) => {
        const fields = await form(request);
        const target = targetOf(fields?.get("redirect") ?? null);
        const view = { title: "Verify your e-mail", redirect: target };
        if (!fields) return formExpired(request, "verify-email.html", view);
        const email = fields.get("email") ?? "";
        const answer = await callAuth(request, "POST", "/send-verification-email", { email, callbackURL: target });
        if (answer.status === 200) return go(request, checkInbox(target));
        return fail(request, "verify-email.html", { ...view, email, error: errorMessage(answer.code) }, statusOf(answer));
      },
      { parse: "none" },
    )
    .get("/account", ({ request }) => accountPage(request))
    .get("/account/link/:id", async ({ request, params }) => {
      const provider = providers.find((candidate) => candidate.id === params.id);
      if (!provider) return notFound(request);
      // A GET (a link, so that the redirect to the provider needs no form-action exception),
      // so it carries the form token itself.
      if (!formTokenValid(request.headers.get("cookie"), new URL(request.url).searchParams.get("csrf"), secure)) return accountPage(request, { error: errorMessage("FORM_EXPIRED") }, 403);
      return startProvider(request, provider, `${P}/account?notice=linked`, true);
    })
    .post(
      "/account/name",
      async ({ request }) => {
        const checked = await accountForm(request);
        if ("response" in checked) return checked.response;
        const answer = await callAuth(request, "POST", "/update-user", { name: (checked.fields.get("name") ?? "").trim() });
        return answer.status === 200 ? go(request, `${P}/account?notice=name-changed`, answer.setCookies) : accountFailure(request, answer);
      },
      { parse: "none" },
    )
    .post(
      "/account/password",
      async ({ request }) => {
        const checked = await accountForm(request);
        if ("response" in checked) return checked.response;
        const { fields } = checked;
        const answer = await callAuth(request, "POST", "/change-password", {
          currentPassword: fields.get("currentPassword") ?? "",
          newPassword: fields.get("newPassword") ?? "",
          revokeOtherSessions: fields.get("revokeOtherSessions") === "on",
        });
        return answer.status === 200 ? go(request, `${P}/account?notice=password-changed`, answer.setCookies) : accountFailure(request, answer);
      },
      { parse: "none" },
    )
    .post(
      "/account/sessions/revoke",
      async ({ request }) => {
        const checked = await accountForm(request);
        if ("response" in checked) return checked.response;
        const id = checked.fields.get("id");
        // Pages never hold session tokens (each is as good as the cookie): the id is looked up here.
        const [current, listed] = await Promise.all([sessionOf(request), callAuth(request, "GET", "/list-sessions")]);
        if (!current) return go(request, `${P}/sign-in`);
        const session = Array.isArray(listed.json) ? (listed.json as { id: string; token: string }[]).find((candidate) => candidate.id === id) : undefined;
        if (!session) return accountFailure(request, Array.isArray(listed.json) ? { ...listed, status: 404, code: "SESSION_NOT_FOUND" } : listed);
        const answer = await callAuth(request, "POST", "/revoke-session", { token: session.token });
        if (answer.status !== 200) return accountFailure(request, answer);
        if (session.id !== current.session.id) return go(request, `${P}/account?notice=session-revoked`, answer.setCookies);
        const signOut = await callAuth(request, "POST", "/sign-out");
        return go(request, `${P}/sign-in?notice=signed-out`, signOut.setCookies);
      },
      { parse: "none" },
    )
    .post(
      "/account/sessions/revoke-all",
      async ({ request }) => {
        const checked = await accountForm(request);
        if ("response" in checked) return checked.response;
        const answer = await callAuth(request, "POST", "/revoke-sessions");
        if (answer.status !== 200) return accountFailure(request, answer);
        // The browser's own cookie is cleared too.
        const signOut = await callAuth(request, "POST", "/sign-out");
        return go(request, `${P}/sign-in?notice=signed-out`, signOut.setCookies);
      },
      { parse: "none" },
    )
    .post(
      "/account/unlink",
      async ({ request }) => {
        const checked = await accountForm(request);
        if ("response" in checked) return checked.response;
        const answer = await callAuth(request, "POST", "/unlink-account", { providerId: checked.fields.get("providerId") ?? "" });
        return answer.status === 200 ? go(request, `${P}/account?notice=unlinked`, answer.setCookies) : accountFailure(request, answer);
      },
      { parse: "none" },
    )
    .post(
      "/sign-out",
      async ({ request }) => {
        const fields = await form(request);
        if (!fields) return formExpired(request, "message.html", { title: "Sign out", back: `${P}/account`, backLabel: "Back to your account" });
        const answer = await callAuth(request, "POST", "/sign-out");
        if (answer.status !== 200) return fail(request, "message.html", { title: "Sign out", error: errorMessage(answer.code), back: `${P}/account`, backLabel: "Back to your account" }, statusOf(answer));
        return go(request, `${P}/sign-in?notice=signed-out`, answer.setCookies);
      },
      { parse: "none" },
    )
    .all("/*", ({ request }) => notFound(request), { parse: "none" });
}

/**
 * The one place where a refusal of a browser navigation becomes a page: no session → the
 * sign-in page, with the way back; signed in but not allowed → a readable 403. API calls
 * (anything that does not prefer HTML) keep their JSON.
 */
export function createRefusalPages(deps: Pick<PagesDeps, "config" | "templates" | "identify">) {
  const P = deps.config.pages!.path;
  const secure = deps.config.authUrl.protocol === "https:";
  const render = createRenderer(deps.templates, deps.config.theme, P);
  return async function refusalPage(error: GatewayError, request: Request, pathAndQuery: string): Promise<Response | undefined> {
    if (error.status === 401) {
      return new Response(null, { status: 302, headers: securedHeaders({ location: `${P}/sign-in?redirect=${encodeURIComponent(pathAndQuery)}` }) });
    }
    if (error.status !== 403) return undefined;
    const identity = await deps.identify(request.headers).catch(() => null);
    const { token, setCookie } = formToken(request.headers.get("cookie"), secure);
    const headers = securedHeaders();
    if (setCookie) headers.append("set-cookie", setCookie);
    const html = render("message.html", {
      title: "No access",
      text: "Your account is not allowed to open this page. If you think it should be, ask the app's administrator.",
      signedInAs: identity?.claims.email,
      csrf: token,
      back: "/",
      backLabel: "Back to the start page",
    });
    return new Response(html, { status: 403, headers });
  };
}
