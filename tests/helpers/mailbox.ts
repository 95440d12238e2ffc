import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { simpleParser } from "mailparser";
import { SMTPServer, type SMTPServerError, type SMTPServerOptions } from "smtp-server";

/** One mail as the test mail server received it. */
export interface ReceivedMail {
  /** The envelope's sender (MAIL FROM); the From header is in `headers`. */
  from: string;
  /** The envelope's recipients (RCPT TO): who the mail was really delivered to. */
  to: string[];
  subject: string;
  text: string;
  html: string;
  headers: Map<string, unknown>;
  raw: string;
}

export interface Mailbox {
  /** smtp://user:pass@127.0.0.1:PORT — what SMTP_URL is set to */
  url: string;
  messages: ReceivedMail[];
  /**
   * Resolves with the next message (or the first already received and not yet taken) for which
   * `match` is true; rejects after `timeoutMs` with an error listing what did arrive. Each message
   * is taken once, so two `next()` calls get two mails.
   */
  next(match?: (mail: ReceivedMail) => boolean, timeoutMs?: number): Promise<ReceivedMail>;
  /** Successful AUTH logins seen (usernames), to prove credentials from the URL were used. */
  logins: string[];
  stop(): Promise<void>;
}

const DEFAULT_USER = "mailer";
const DEFAULT_PASS = "s3cret-pass";

function smtpUrl(port: number, user = DEFAULT_USER, pass = DEFAULT_PASS): string {
  // nodemailer percent-decodes the userinfo, so any character may be in a test's password.
  return `smtp://${encodeURIComponent(user)}:${encodeURIComponent(pass)}@127.0.0.1:${port}`;
}

function smtpError(message: string, responseCode: number): SMTPServerError {
  return Object.assign(new Error(message), { responseCode });
}

/**
 * An smtp-server on an ephemeral loopback port, with the options every test server shares, and
 * a stop() that does not wait: smtp-server's close() gives open sessions 30 s to finish (a pooled
 * or hung client would hold a test that long), so the raw sockets are tracked and destroyed.
 */
async function listenSmtp(options: SMTPServerOptions): Promise<{ port: number; stop(): Promise<void> }> {
  const server = new SMTPServer({
    name: "mailbox.test",
    // Cleartext AUTH on loopback: the tests have no certificate a client would trust, and
    // without STARTTLS smtp-server never presents (or warns about) its built-in one.
    disabledCommands: ["STARTTLS"],
    allowInsecureAuth: true,
    // No reverse DNS for 127.0.0.1 on every connection.
    disableReverseLookup: true,
    logger: false,
    closeTimeout: 100,
    ...options,
  });
  const sockets = new Set<Socket>();
  server.server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  // A client that resets its connection (a timed-out send) must not fail the test run.
  server.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    server.server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.server.address() as AddressInfo;
  return {
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

/**
 * A real SMTP server on an ephemeral loopback port that requires AUTH (PLAIN or LOGIN) with
 * `user`/`pass` and keeps every mail, parsed by mailparser. A send resolves only after its mail
 * is in `messages` (the server answers DATA once the mail is parsed).
 */
export async function startMailbox(options: { user?: string; pass?: string } = {}): Promise<Mailbox> {
  const user = options.user ?? DEFAULT_USER;
  const pass = options.pass ?? DEFAULT_PASS;
  const messages: ReceivedMail[] = [];
  const logins: string[] = [];
  const taken = new Set<ReceivedMail>();
  let waiters: { match: (mail: ReceivedMail) => boolean; resolve: (mail: ReceivedMail) => void }[] = [];

  const deliver = (mail: ReceivedMail) => {
    messages.push(mail);
    // The oldest waiter that wants it takes it; an untaken mail waits for a later next().
    const waiter = waiters.find((w) => w.match(mail));
    if (!waiter) return;
    waiters = waiters.filter((w) => w !== waiter);
    taken.add(mail);
    waiter.resolve(mail);
  };

  const smtp = await listenSmtp({
    onAuth(auth, _session, callback) {
      if (auth.username !== user || auth.password !== pass) {
        return callback(smtpError("Authentication credentials invalid", 535));
      }
      logins.push(auth.username);
      callback(null, { user: auth.username });
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("error", callback);
      stream.on("end", async () => {
        const raw = Buffer.concat(chunks);
        try {
          const parsed = await simpleParser(raw);
          deliver({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
            to: session.envelope.rcptTo.map((rcpt) => rcpt.address),
            subject: parsed.subject ?? "",
            text: parsed.text ?? "",
            html: parsed.html || "",
            headers: parsed.headers,
            raw: raw.toString("utf8"),
          });
          callback();
        } catch (error) {
          callback(smtpError(`mailbox could not parse the mail: ${error}`, 451));
        }
      });
    },
  });

  return {
    url: smtpUrl(smtp.port, user, pass),
    messages,
    logins,
    next(match = () => true, timeoutMs = 10_000) {
      const found = messages.find((mail) => !taken.has(mail) && match(mail));
      if (found) {
        taken.add(found);
        return Promise.resolve(found);
      }
      return new Promise((resolve, reject) => {
        const waiter = {
          match,
          resolve: (mail: ReceivedMail) => {
            clearTimeout(timer);
            resolve(mail);
          },
        };
        const timer = setTimeout(() => {
          waiters = waiters.filter((w) => w !== waiter);
          const seen = messages.map((m) => `  to ${m.to.join(", ")}: "${m.subject}"${taken.has(m) ? " (taken)" : ""}`);
          reject(
            new Error(
              `no matching mail within ${timeoutMs} ms; ${messages.length} arrived` +
                (seen.length ? `:\n${seen.join("\n")}` : ""),
            ),
          );
        }, timeoutMs);
        waiters.push(waiter);
      });
    },
    stop: smtp.stop,
  };
}

/**
 * An SMTP endpoint that is "down" in the ways a real one fails:
 * - `silent`: accepts the connection and never sends the greeting (a hung server: the client
 *   must give up by its greeting timeout);
 * - `rejects`: accepts any AUTH, then refuses every recipient with 550;
 * - `auth-fails`: refuses every AUTH with 535 (wrong or revoked credentials).
 */
export async function startBrokenSmtp(
  kind: "silent" | "rejects" | "auth-fails",
): Promise<{ url: string; stop(): Promise<void> }> {
  if (kind === "silent") {
    const sockets = new Set<Socket>();
    const server: Server = createServer((socket) => {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
      // The client that gives up resets the connection; that is the point, not an error.
      socket.on("error", () => {});
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    return {
      url: smtpUrl(port),
      stop: () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          for (const socket of sockets) socket.destroy();
        }),
    };
  }
  const smtp = await listenSmtp(
    kind === "rejects"
      ? {
          onAuth: (auth, _session, callback) => callback(null, { user: auth.username }),
          onRcptTo: (address, _session, callback) =>
            callback(smtpError(`<${address.address}>: Recipient address rejected`, 550)),
        }
      : {
          onAuth: (_auth, _session, callback) => callback(smtpError("Authentication credentials invalid", 535)),
        },
  );
  return { url: smtpUrl(smtp.port), stop: smtp.stop };
}
