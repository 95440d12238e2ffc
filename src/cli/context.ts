import { openAuth, type OpenedAuth } from "../auth/service";
import type { Config } from "../config";
import type { Mailer, MailRequest } from "../email/mailer";
import type { Logger } from "../ops/log";

/** What every admin command runs against: Better Auth on the gateway's own database. */
export interface AdminContext extends OpenedAuth {
  readonly config: Config;
  /** The mails Better Auth asked to send during this run (their links carry tokens). */
  readonly mails: readonly MailRequest[];
  /** A line for the operator, on stderr (never mixed into the command's output). */
  note(text: string): void;
}

/**
 * Opens the database as the gateway does (same environment, same Better Auth configuration,
 * same Redis), migrating it first under the start-up lock, so that a command works on a fresh
 * database and beside running instances alike.
 *
 * Better Auth's mailer is wrapped to keep each mail's link: `user add` prints the reset link it
 * asked for. With SMTP the mail is sent as well; in development without SMTP the link is
 * printed instead of being logged.
 */
export async function openAdmin(config: Config, logger: Logger, note: (text: string) => void): Promise<AdminContext> {
  const mails: MailRequest[] = [];
  const keepLinks = (sender: Mailer): Mailer => ({
    delivery: sender.delivery,
    async send(mail) {
      mails.push(mail);
      if (sender.delivery === "smtp") await sender.send(mail);
    },
    tracking: (run) => sender.tracking(run),
  });
  const opened = await openAuth(config, logger, {
    wrapMailer: keepLinks,
    onMigrate: () => note("creating or updating the database schema…"),
  });
  return Object.assign(opened, { config, mails, note });
}
