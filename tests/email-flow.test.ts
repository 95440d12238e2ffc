import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startBrokenSmtp, startMailbox, type Mailbox } from "./helpers/mailbox";
import { cookieHeader, startGateway, tempDir, type RunningGateway } from "./helpers/gateway";

/**
 * Password reset through the pages, with a real SMTP server on loopback as the mailbox: the
 * mail arrives, its link (built from BETTER_AUTH_URL whatever the request's Host said) sets a
 * new password once, the old one stops working and so do the user's other sessions; a mail
 * server that does not answer gives a readable message within SMTP_TIMEOUT_MS.
 */

const PASSWORD = "correct horse battery";

/** A browser's cookie jar, by name, for plain fetch. */
class Jar {
  private cookies = new Map<string, string>();
  take(response: Response) {
    for (const cookie of response.headers.getSetCookie()) {
      const [pair] = cookie.split(";");
      const at = pair!.indexOf("=");
      this.cookies.set(pair!.slice(0, at), pair!.slice(at + 1));
    }
  }
  get header() {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join("; ");
  }
}

async function formPage(url: string, jar: Jar): Promise<string> {
  const response = await fetch(url, { headers: { cookie: jar.header } });
  jar.take(response);
  const html = await response.text();
  return /name="csrf" value="([^"]+)"/.exec(html)![1]!;
}

async function post(url: string, jar: Jar, fields: Record<string, string>, headers: Record<string, string> = {}) {
  const csrf = await formPage(`${new URL(url).origin}/auth/sign-in`, jar);
  const response = await fetch(url, {
    method: "POST",
    redirect: "manual",
    headers: { "content-type": "application/x-www-form-urlencoded", cookie: jar.header, ...headers },
    body: new URLSearchParams({ csrf, ...fields }),
  });
  jar.take(response);
  return response;
}

async function signUp(gw: RunningGateway, email: string) {
  const response = await fetch(`${gw.url}/api/auth/sign-up/email`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password: PASSWORD, name: "Ada" }),
  });
  expect(response.status).toBe(200);
  return cookieHeader(response);
}

async function sessionOf(gw: RunningGateway, cookie: string) {
  return (await fetch(`${gw.url}/api/auth/get-session`, { headers: { cookie } })).json();
}

describe("password reset by e-mail", () => {
  let mailbox: Mailbox;
  let gw: RunningGateway;
  const dir = tempDir();

  beforeAll(async () => {
    mailbox = await startMailbox();
    // The gateway believes forwarded headers from this machine, as behind a proxy.
    gw = await startGateway({ SMTP_URL: mailbox.url, EMAIL_FROM: "Acme <no-reply@acme.test>", APP_NAME: "Acme", TRUSTED_PROXIES: "127.0.0.1" }, dir.path);
  });
  afterAll(async () => {
    await gw?.stop();
    await mailbox?.stop();
    dir.remove();
  });

  test("the mail arrives, its link sets a new password once, the old password and other sessions stop working", async () => {
    const email = `reset-${crypto.randomUUID().slice(0, 8)}@example.test`;
    const otherSession = await signUp(gw, email);
    expect(await sessionOf(gw, otherSession)).not.toBeNull();

    const jar = new Jar();
    // A poisoned Host, as a proxy would forward it: the link must still be BETTER_AUTH_URL's.
    const asked = await post(`${gw.url}/auth/forgot-password`, jar, { email }, { "x-forwarded-host": "evil.example", "x-forwarded-proto": "https" });
    expect(asked.status).toBe(303);
    expect(asked.headers.get("location")).toBe("/auth/sign-in?notice=reset-sent");

    const mail = await mailbox.next((candidate) => candidate.to.includes(email));
    expect(mail.subject).toBe("Reset your Acme password");
    expect(String(mail.headers.get("from") && (mail.headers.get("from") as { text?: string }).text)).toContain("no-reply@acme.test");
    expect(mailbox.logins).toContain("mailer");
    const link = /(http\S+reset-password\?token=[A-Za-z0-9%_-]+)/.exec(mail.text)![1]!;
    expect(link.startsWith(`${gw.url}/auth/reset-password?token=`)).toBe(true);
    expect(mail.text + mail.html).not.toContain("evil.example");
    expect(mail.html).toContain(link);

    const page = await (await fetch(link)).text();
    expect(page).toContain('name="newPassword"');
    const token = new URL(link).searchParams.get("token")!;
    const reset = await post(`${gw.url}/auth/reset-password`, jar, { token, newPassword: "a brand new password" });
    expect(reset.status).toBe(303);
    expect(reset.headers.get("location")).toBe("/auth/sign-in?notice=password-reset");

    const withOld = await post(`${gw.url}/auth/sign-in`, new Jar(), { email, password: PASSWORD });
    expect(withOld.status).toBe(401);
    expect(await withOld.text()).toContain("That e-mail and password do not match an account.");
    const withNew = await post(`${gw.url}/auth/sign-in`, new Jar(), { email, password: "a brand new password" });
    expect(withNew.status).toBe(303);
    expect(withNew.headers.getSetCookie().some((cookie) => cookie.startsWith("better-auth.session_token="))).toBe(true);

    // Single use: the same link again is refused with a sentence.
    const again = await post(`${gw.url}/auth/reset-password`, jar, { token, newPassword: "yet another password" });
    expect(again.status).toBe(400);
    expect(await again.text()).toContain("This link is not valid any more");
    // The session from before the reset is over.
    expect(await sessionOf(gw, otherSession)).toBeNull();
  }, 30_000);
});

describe("a mail server that does not answer", () => {
  let gw: RunningGateway;
  let smtp: { url: string; stop(): Promise<void> };
  const dir = tempDir();

  beforeAll(async () => {
    smtp = await startBrokenSmtp("silent");
    gw = await startGateway({ SMTP_URL: smtp.url, EMAIL_FROM: "no-reply@acme.test", SMTP_TIMEOUT_MS: "500" }, dir.path);
  });
  afterAll(async () => {
    await gw?.stop();
    await smtp?.stop();
    dir.remove();
  });

  test("the page says the mail could not be sent, the API answers 503, the log says why without the password, and the gateway keeps serving", async () => {
    const email = `down-${crypto.randomUUID().slice(0, 8)}@example.test`;
    await signUp(gw, email);
    const page = await post(`${gw.url}/auth/forgot-password`, new Jar(), { email });
    expect(page.status).toBe(503);
    expect(await page.text()).toMatch(/role="alert"[^>]*>We could not send the e-mail. Please try again later.</);

    const api = await fetch(`${gw.url}/api/auth/request-password-reset`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: gw.url },
      body: JSON.stringify({ email }),
    });
    expect(api.status).toBe(503);
    expect(await api.json()).toEqual({ error: "Could not send the e-mail, try again later", code: "EMAIL_NOT_SENT" });

    const failures = gw.logLines.filter((line) => line.includes("e-mail could not be sent"));
    expect(failures.length).toBe(2);
    expect(JSON.parse(failures[0]!)).toMatchObject({ level: "error", kind: "reset-password", code: "ETIMEDOUT" });
    const password = decodeURIComponent(new URL(smtp.url).password);
    expect(password.length).toBeGreaterThan(3);
    expect(gw.logLines.join("\n")).not.toContain(password);
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
  }, 30_000);
});

describe("REQUIRE_EMAIL_VERIFICATION=true", () => {
  let mailbox: Mailbox;
  let gw: RunningGateway;
  const dir = tempDir();

  beforeAll(async () => {
    mailbox = await startMailbox();
    gw = await startGateway({ SMTP_URL: mailbox.url, EMAIL_FROM: "no-reply@acme.test", REQUIRE_EMAIL_VERIFICATION: "true" }, dir.path);
  });
  afterAll(async () => {
    await gw?.stop();
    await mailbox?.stop();
    dir.remove();
  });

  test("sign-up sends the mail and no session; sign-in is refused with resend; the link verifies and signs in", async () => {
    const email = `verify-${crypto.randomUUID().slice(0, 8)}@example.test`;
    const jar = new Jar();
    const signedUp = await post(`${gw.url}/auth/sign-up`, jar, { name: "Ada <b>", email, password: PASSWORD, redirect: "/app" });
    expect(signedUp.status).toBe(303);
    expect(signedUp.headers.get("location")).toBe(`/auth/verify-email?sent=1&redirect=${encodeURIComponent("/app")}`);
    expect(signedUp.headers.getSetCookie().some((cookie) => cookie.startsWith("better-auth.session_token="))).toBe(false);
    const first = await mailbox.next((mail) => mail.to.includes(email));
    expect(first.subject).toBe("Verify your e-mail address for authgate");
    // The name is the user's: escaped in the HTML part.
    expect(first.html).toContain("Ada &lt;b&gt;");
    expect(first.html).not.toContain("Ada <b>");

    const refused = await post(`${gw.url}/auth/sign-in`, new Jar(), { email, password: PASSWORD });
    expect(refused.status).toBe(403);
    const page = await refused.text();
    expect(page).toContain("Please verify your e-mail address first");
    expect(page).toContain('action="/auth/verify-email/resend"');

    const resent = await post(`${gw.url}/auth/verify-email/resend`, new Jar(), { email });
    expect(resent.status).toBe(303);
    const second = await mailbox.next((mail) => mail.to.includes(email));
    const link = /(http\S+verify-email\?token=[A-Za-z0-9._%-]+)/.exec(second.text)![1]!;
    expect(link.startsWith(`${gw.url}/auth/verify-email?token=`)).toBe(true);

    const verified = await fetch(link, { redirect: "manual" });
    expect(verified.status).toBe(200);
    expect(await verified.text()).toContain("Your e-mail address is verified.");
    const cookie = cookieHeader(verified);
    expect(cookie).toContain("better-auth.session_token=");
    expect(await sessionOf(gw, cookie)).toMatchObject({ user: { email, emailVerified: true } });
    const signedIn = await post(`${gw.url}/auth/sign-in`, new Jar(), { email, password: PASSWORD });
    expect(signedIn.status).toBe(303);
  }, 30_000);
});
