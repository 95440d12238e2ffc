import { existsSync, readdirSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { RESERVED_PATHS, RESERVED_PREFIXES } from "../routes/table";

/** Where the sign-in pages (src/pages) live; the config holds none when PAGES=off. */
export interface PagesConfig {
  /** @default "/auth" */
  readonly path: string;
}

/** How the pages and the mails look (also with PAGES=off: the mails use it). */
export interface Theme {
  /** In titles, headings and mail. @default "authgate" */
  readonly appName: string;
  /** A same-origin path (or URL) of a logo image; undefined: the name alone. */
  readonly logoUrl: string | undefined;
  /** `#rrggbb`, the buttons' and links' colour. @default "#4f46e5" */
  readonly brandColor: string;
  /** Absolute directory whose files replace the built-in templates of the same name. */
  readonly templateDir: string | undefined;
}

type Read = (name: string) => string | undefined;

/** Every file PAGES_TEMPLATE_DIR may hold: pages, the layout, the stylesheet, the mails. */
export const TEMPLATE_FILES = [
  "layout.html",
  "sign-in.html",
  "sign-up.html",
  "forgot-password.html",
  "reset-password.html",
  "verify-email.html",
  "account.html",
  "message.html",
  "style.css",
  "email-verification.html",
  "email-verification.txt",
  "email-reset-password.html",
  "email-reset-password.txt",
] as const;
export type TemplateFile = (typeof TEMPLATE_FILES)[number];

const PATH = /^(\/[a-z0-9][a-z0-9._-]*)+$/;

export function parsePagesConfig(read: Read, authOrigin: string, cwd: string, problems: string[]): { pages: PagesConfig | undefined; theme: Theme } {
  const switchRaw = read("PAGES")?.toLowerCase();
  if (switchRaw !== undefined && !["on", "off", "true", "false", "1", "0"].includes(switchRaw)) {
    problems.push(`PAGES must be "on" or "off", got "${switchRaw}"`);
  }
  const enabled = !(switchRaw !== undefined && ["off", "false", "0"].includes(switchRaw));

  const path = (read("PAGES_PATH") ?? "/auth").replace(/(.)\/$/, "$1");
  if (!PATH.test(path)) {
    problems.push(`PAGES_PATH must be a path such as "/auth" (lower-case letters, digits, ".", "_", "-"), got "${path.slice(0, 100)}"`);
  } else {
    const clash = [...RESERVED_PATHS, ...RESERVED_PREFIXES].find(
      (reserved) => path === reserved || path.startsWith(`${reserved}/`) || reserved.startsWith(`${path}/`) || path.startsWith("/swagger"),
    );
    if (clash) problems.push(`PAGES_PATH must not overlap the gateway's own "${clash}", got "${path}"`);
  }

  const brandColor = (read("BRAND_COLOR") ?? "#4f46e5").toLowerCase();
  // It is written into a stylesheet: only a colour, nothing that could end the rule.
  if (!/^#([0-9a-f]{3}|[0-9a-f]{6})$/.test(brandColor)) problems.push(`BRAND_COLOR must be a hex colour such as "#4f46e5", got "${brandColor.slice(0, 40)}"`);

  const logoRaw = read("APP_LOGO_URL");
  let logoUrl: string | undefined;
  if (logoRaw !== undefined) {
    // The pages' Content-Security-Policy loads images from the gateway's own origin only.
    let url: URL | undefined;
    try {
      url = new URL(logoRaw, authOrigin);
    } catch {
      url = undefined;
    }
    if (!url || url.origin !== authOrigin || logoRaw.startsWith("//") || logoRaw.includes("\\")) {
      problems.push(
        `APP_LOGO_URL must be on the gateway's own origin (a path such as "/logo.svg", served by a static route): the pages load nothing from other origins, got "${logoRaw.slice(0, 100)}"`,
      );
    } else logoUrl = url.pathname + url.search;
  }

  const appName = read("APP_NAME") ?? "authgate";
  if (appName.length > 80) problems.push(`APP_NAME must be at most 80 characters, got ${appName.length}`);

  const templateRaw = read("PAGES_TEMPLATE_DIR");
  let templateDir: string | undefined;
  if (templateRaw !== undefined) {
    templateDir = resolve(cwd, templateRaw);
    if (!existsSync(templateDir) || !statSync(templateDir).isDirectory()) {
      problems.push(`PAGES_TEMPLATE_DIR must be a directory, got "${templateRaw}"`);
      templateDir = undefined;
    } else {
      // A misspelt file name would silently keep the built-in template.
      const unknown = readdirSync(templateDir).filter((name) => !name.startsWith(".") && !(TEMPLATE_FILES as readonly string[]).includes(name));
      if (unknown.length > 0) problems.push(`PAGES_TEMPLATE_DIR holds ${unknown.map((name) => `"${name}"`).join(", ")}, which no template is named: expected any of ${TEMPLATE_FILES.join(", ")}`);
    }
  }
  return { pages: enabled ? { path } : undefined, theme: { appName, logoUrl, brandColor, templateDir } };
}
