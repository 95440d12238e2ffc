import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import Mustache from "mustache";
// The built-in templates, embedded in the compiled binary as text.
import layout from "./templates/layout.html" with { type: "text" };
import signIn from "./templates/sign-in.html" with { type: "text" };
import signUp from "./templates/sign-up.html" with { type: "text" };
import forgotPassword from "./templates/forgot-password.html" with { type: "text" };
import resetPassword from "./templates/reset-password.html" with { type: "text" };
import verifyEmail from "./templates/verify-email.html" with { type: "text" };
import account from "./templates/account.html" with { type: "text" };
import message from "./templates/message.html" with { type: "text" };
import style from "./templates/style.css" with { type: "text" };
import emailVerificationHtml from "../email/templates/email-verification.html" with { type: "text" };
import emailVerificationTxt from "../email/templates/email-verification.txt" with { type: "text" };
import emailResetHtml from "../email/templates/email-reset-password.html" with { type: "text" };
import emailResetTxt from "../email/templates/email-reset-password.txt" with { type: "text" };
import { TEMPLATE_FILES, type TemplateFile } from "./config";

// Bun's types call every `.html` import an HTML bundle; `with { type: "text" }` makes it a string.
const text = (module: unknown) => module as string;

const BUILT_IN: Record<TemplateFile, string> = {
  "layout.html": text(layout),
  "sign-in.html": text(signIn),
  "sign-up.html": text(signUp),
  "forgot-password.html": text(forgotPassword),
  "reset-password.html": text(resetPassword),
  "verify-email.html": text(verifyEmail),
  "account.html": text(account),
  "message.html": text(message),
  "style.css": text(style),
  "email-verification.html": text(emailVerificationHtml),
  "email-verification.txt": text(emailVerificationTxt),
  "email-reset-password.html": text(emailResetHtml),
  "email-reset-password.txt": text(emailResetTxt),
};

export type Templates = Readonly<Record<TemplateFile, string>>;

/**
 * The built-in templates with PAGES_TEMPLATE_DIR's files in their place, file by file (the
 * oauth2-proxy pattern). Read once at start-up; each is parsed once here, so a template with a
 * syntax error stops the start with its name rather than failing the first page view.
 */
export function loadTemplates(templateDir: string | undefined): Templates {
  const templates = { ...BUILT_IN };
  for (const name of TEMPLATE_FILES) {
    const file = templateDir && join(templateDir, name);
    if (file && existsSync(file)) templates[name] = readFileSync(file, "utf8");
    if (name.endsWith(".css")) continue;
    try {
      Mustache.parse(templates[name]);
    } catch (error) {
      throw new Error(`PAGES_TEMPLATE_DIR: ${name}: ${(error as Error).message}`);
    }
  }
  return Object.freeze(templates);
}

const HTML_ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;", "`": "&#96;" };

/**
 * Mustache with HTML escaping (`{{x}}`); `{{{x}}}` only for what the gateway rendered itself.
 * The characters that end text or a quoted attribute are escaped; Mustache's default also
 * escapes "/" and "=", which left links in mail reading "http:&#x2F;&#x2F;…". Templates quote
 * every attribute value.
 */
export function renderHtml(template: string, view: object): string {
  return Mustache.render(template, view, {}, { escape: (value: string) => String(value).replace(/[&<>"'`]/g, (character) => HTML_ESCAPES[character]!) });
}

/** For text/plain mail: nothing escaped (there is no markup to break). */
export function renderText(template: string, view: object): string {
  return Mustache.render(template, view, {}, { escape: (value: string) => value });
}
