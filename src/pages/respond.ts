import { randomBytes, timingSafeEqual } from "node:crypto";
import type { Theme } from "./config";
import { renderHtml, type Templates } from "./templates";

/**
 * How every page is answered: rendered into the layout, with the security headers below, and
 * with the form token (double-submit) the page's forms carry.
 */

/**
 * Nothing from another origin, no inline script or style, no framing. `form-action 'self'`:
 * forms post to the gateway only; provider buttons are links (a redirect after a form post
 * would have to be allowed here for every provider's origin).
 */
export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

export const PAGE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "content-type": "text/html; charset=utf-8",
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-frame-options": "DENY",
  // Reset and verification links carry tokens: no page passes its URL on.
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "cross-origin-opener-policy": "same-origin",
});

export function securedHeaders(extra?: Record<string, string>): Headers {
  const headers = new Headers(PAGE_HEADERS);
  if (extra) for (const [name, value] of Object.entries(extra)) headers.set(name, value);
  return headers;
}

/** The form token's cookie: `__Host-` on https, so no subdomain can plant one. */
export function csrfCookieName(secure: boolean): string {
  return secure ? "__Host-authgate-csrf" : "authgate-csrf";
}

const TOKEN = /^[A-Za-z0-9_-]{43}$/;

/** The form token the browser holds, or a new one (then `setCookie` carries it to the browser). */
export function formToken(cookieHeader: string | null, secure: boolean): { token: string; setCookie: string | undefined } {
  const name = csrfCookieName(secure);
  const held = readCookie(cookieHeader, name);
  if (held && TOKEN.test(held)) return { token: held, setCookie: undefined };
  const token = randomBytes(32).toString("base64url");
  return { token, setCookie: `${name}=${token}; Path=/; HttpOnly; SameSite=Lax${secure ? "; Secure" : ""}` };
}

/**
 * A page's form post is the browser's own when it carries the token its cookie holds: another
 * site can make a browser post a form but can read neither. (Pages send `Referrer-Policy:
 * no-referrer`, so browsers send `Origin: null` on their form posts: the Origin check alone
 * could not tell them from a sandboxed attacker's.)
 */
export function formTokenValid(cookieHeader: string | null, sent: string | null, secure: boolean): boolean {
  const held = readCookie(cookieHeader, csrfCookieName(secure));
  if (!held || !sent || !TOKEN.test(held) || held.length !== sent.length) return false;
  return timingSafeEqual(Buffer.from(held), Buffer.from(sent));
}

function readCookie(header: string | null, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const at = part.indexOf("=");
    if (at !== -1 && part.slice(0, at).trim() === name) return part.slice(at + 1).trim();
  }
  return undefined;
}

export interface PageView {
  title: string;
  error?: string | undefined;
  notice?: string | undefined;
  [key: string]: unknown;
}

export function createRenderer(templates: Templates, theme: Theme, pagesPath: string) {
  const assets = `${pagesPath}/assets`;
  return function render(page: keyof Templates, view: PageView): string {
    const full = { ...view, appName: theme.appName, logoUrl: theme.logoUrl, pagesPath, assets };
    return renderHtml(templates["layout.html"], { ...full, body: renderHtml(templates[page], full) });
  };
}

/** `--brand` from BRAND_COLOR, and the text colour on it that reads best (WCAG contrast). */
export function themeStylesheet(brandColor: string): string {
  const hex = brandColor.length === 4 ? brandColor.replace(/[0-9a-f]/g, (digit) => digit + digit) : brandColor;
  const channel = (offset: number) => {
    const value = parseInt(hex.slice(offset, offset + 2), 16) / 255;
    return value <= 0.03928 ? value / 12.92 : ((value + 0.055) / 1.055) ** 2.4;
  };
  const luminance = 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
  const onBrand = (1.05 / (luminance + 0.05) >= (luminance + 0.05) / 0.05) ? "#ffffff" : "#111111";
  return `:root { --brand: ${hex}; --brand-text: ${onBrand}; }\n`;
}

/** "Firefox on Linux", from a User-Agent, for the sessions list (a guess, and labelled as one only by being short). */
export function deviceLabel(userAgent: string | null | undefined): string {
  if (!userAgent) return "Unknown device";
  const browser = /Edg\//.test(userAgent)
    ? "Edge"
    : /Firefox\//.test(userAgent)
      ? "Firefox"
      : /Chrome\/|Chromium\//.test(userAgent)
        ? "Chrome"
        : /Safari\//.test(userAgent)
          ? "Safari"
          : undefined;
  const system = /Android/.test(userAgent)
    ? "Android"
    : /iPhone|iPad/.test(userAgent)
      ? "iOS"
      : /Mac OS X/.test(userAgent)
        ? "macOS"
        : /Windows/.test(userAgent)
          ? "Windows"
          : /Linux/.test(userAgent)
            ? "Linux"
            : undefined;
  if (browser && system) return `${browser} on ${system}`;
  return browser ?? system ?? userAgent.slice(0, 60);
}
