/**
 * How the gateway sends mail (verification, password reset), read once from the environment.
 * `smtp`: SMTP_URL; `log`: no SMTP_URL in development, so the mail and its link go to the log;
 * `none`: no SMTP_URL in production, so nothing that needs mail is offered.
 */
export interface EmailConfig {
  readonly delivery: "smtp" | "log" | "none";
  /** smtp:// (STARTTLS) or smtps:// (TLS) with credentials; only with `smtp`. Never logged. */
  readonly smtpUrl: string | undefined;
  /** The From header. */
  readonly from: string;
  /** Connection, greeting and socket deadline for the SMTP server. @default 10000 */
  readonly timeoutMs: number;
  /** Sign-up sends a verification mail and unverified users cannot sign in. @default false */
  readonly requireVerification: boolean;
}

type Read = (name: string) => string | undefined;

/** The SMTP deadline stays below the auth worker's call deadline (15 s), so a hung mail server fails the mail, not the worker. */
export const MAX_SMTP_TIMEOUT_MS = 12_000;

export function parseEmailConfig(
  read: Read,
  integer: (name: string, fallback: number, min: number, max: number) => number,
  production: boolean,
  problems: string[],
): EmailConfig {
  const smtpUrl = read("SMTP_URL");
  if (smtpUrl !== undefined) {
    // The URL is never echoed: it carries the mail account's password.
    let url: URL | undefined;
    try {
      url = new URL(smtpUrl);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== "smtp:" && url.protocol !== "smtps:") || !url.hostname) {
      problems.push("SMTP_URL must be smtp://user:pass@host:587 (STARTTLS) or smtps://user:pass@host:465 (TLS)");
    }
  }
  const from = read("EMAIL_FROM");
  if (smtpUrl !== undefined && from === undefined) {
    problems.push('EMAIL_FROM is required with SMTP_URL: the sender, such as "Example <no-reply@example.com>"');
  } else if (from !== undefined && !/^[^\r\n<>]*<[^\s@<>]+@[^\s@<>]+>$|^[^\s@<>]+@[^\s@<>]+$/.test(from)) {
    problems.push(`EMAIL_FROM must be an address or "Name <address>", got "${from.slice(0, 100)}"`);
  }
  const verificationRaw = read("REQUIRE_EMAIL_VERIFICATION")?.toLowerCase();
  if (verificationRaw !== undefined && !["true", "false", "on", "off", "1", "0"].includes(verificationRaw)) {
    problems.push(`REQUIRE_EMAIL_VERIFICATION must be "true" or "false", got "${verificationRaw}"`);
  }
  const requireVerification = verificationRaw !== undefined && ["true", "on", "1"].includes(verificationRaw);
  const delivery = smtpUrl !== undefined ? "smtp" : production ? "none" : "log";
  if (requireVerification && delivery === "none") {
    problems.push("REQUIRE_EMAIL_VERIFICATION=true needs SMTP_URL when NODE_ENV=production: nobody could verify an address, so nobody could sign in");
  }
  return {
    delivery,
    smtpUrl: delivery === "smtp" ? smtpUrl : undefined,
    from: from ?? "authgate <authgate@localhost>",
    timeoutMs: integer("SMTP_TIMEOUT_MS", 10_000, 100, MAX_SMTP_TIMEOUT_MS),
    requireVerification,
  };
}
