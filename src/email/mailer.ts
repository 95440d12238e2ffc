import { AsyncLocalStorage } from "node:async_hooks";
import type { Logger } from "../ops/log";
import { renderHtml, renderText, type Templates } from "../pages/templates";
import type { Theme } from "../pages/config";
import type { EmailConfig } from "./config";

export type MailKind = "verification" | "reset-password";

export interface MailRequest {
  kind: MailKind;
  to: string;
  name: string;
  /** The link the mail exists for (it carries a token). */
  link: string;
}

/**
 * Sends the gateway's mails. Better Auth awaits the send but swallows its failure and answers
 * "check your e-mail" anyway; `failures` is where a failed send is noted for the request that
 * caused it, so the auth service (src/auth/service.ts) can answer "could not send" instead.
 */
export interface Mailer {
  readonly delivery: EmailConfig["delivery"];
  send(mail: MailRequest): Promise<void>;
  /** Runs a request with a slot where a failed send is noted; returns whether one failed. */
  tracking<T>(run: () => Promise<T>): Promise<{ value: T; failed: boolean }>;
}

const SUBJECTS: Record<MailKind, (app: string) => string> = {
  verification: (app) => `Verify your e-mail address for ${app}`,
  "reset-password": (app) => `Reset your ${app} password`,
};

export function createMailer(email: EmailConfig, theme: Theme, templates: Templates, logger: Logger): Mailer {
  const failures = new AsyncLocalStorage<{ failed: boolean }>();
  const smtpUrl = email.smtpUrl;
  const transport =
    email.delivery === "smtp" && smtpUrl
      ? // nodemailer (≈40 ms to import) is loaded only where mail is sent by SMTP.
        (require("nodemailer") as typeof import("nodemailer")).createTransport({
          url: smtpUrl,
          // A mail server that is down or hung must fail the send within the deadline, never hang
          // the request (nodemailer waits up to 2 minutes to connect, 10 to send, by default).
          connectionTimeout: email.timeoutMs,
          greetingTimeout: email.timeoutMs,
          socketTimeout: email.timeoutMs,
          dnsTimeout: email.timeoutMs,
          // smtp:// to another machine only over STARTTLS: reset links are as good as passwords.
          requireTLS: smtpUrl.startsWith("smtp:") && !isLoopback(new URL(smtpUrl).hostname),
          disableFileAccess: true,
          disableUrlAccess: true,
        })
      : undefined;

  const compose = (mail: MailRequest) => {
    const view = { appName: theme.appName, brandColor: theme.brandColor, name: mail.name, email: mail.to, link: mail.link };
    const base = mail.kind === "verification" ? "email-verification" : "email-reset-password";
    return {
      subject: SUBJECTS[mail.kind](theme.appName),
      text: renderText(templates[`${base}.txt`], view),
      html: renderHtml(templates[`${base}.html`], view),
    };
  };

  return {
    delivery: email.delivery,
    async send(mail) {
      const { subject, text, html } = compose(mail);
      if (!transport) {
        // Development without SMTP_URL: the flows can still be tried, by following the link from the log.
        logger.warn("e-mail not sent: no SMTP_URL (development); its link is here instead", { kind: mail.kind, to: mail.to, link: mail.link });
        return;
      }
      try {
        await transport.sendMail({ from: email.from, to: mail.to, subject, text, html });
        logger.info("e-mail sent", { kind: mail.kind });
      } catch (error) {
        const slot = failures.getStore();
        if (slot) slot.failed = true;
        // nodemailer's code (ECONNECTION, ETIMEDOUT, EAUTH, EENVELOPE) and the server's reply
        // code say why; its message can quote the server and the address, so it stays out.
        const { code, responseCode, command } = error as { code?: string; responseCode?: number; command?: string };
        logger.error("e-mail could not be sent", { kind: mail.kind, code, responseCode, command });
        throw error;
      }
    },
    async tracking(run) {
      const slot = { failed: false };
      const value = await failures.run(slot, run);
      return { value, failed: slot.failed };
    },
  };
}

function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127\./.test(hostname);
}
