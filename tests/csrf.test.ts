import { expect, test } from "bun:test";
import { isCrossSiteRefused } from "../src/proxy/csrf";

/** The cross-site rule, one row per case: method, Origin, Referer → refused? */
const trustedOrigins = new Set(["https://app.example.com", "https://admin.example.com"]);
const ownOrigin = "http://gw.test:3000";

test.each<[string, string, string | null, string | null, boolean]>([
  ["a GET from anywhere", "GET", "https://evil.example", null, false],
  ["a HEAD from anywhere", "HEAD", "https://evil.example", null, false],
  ["an OPTIONS from anywhere", "OPTIONS", "https://evil.example", null, false],
  ["a POST from the origin the request addressed", "POST", "http://gw.test:3000", null, false],
  ["a POST from BETTER_AUTH_URL", "POST", "https://app.example.com", null, false],
  ["a POST from a trusted origin", "POST", "https://admin.example.com", null, false],
  ["a POST from a foreign origin", "POST", "https://evil.example", null, true],
  ["a POST from a look-alike origin", "POST", "https://app.example.com.evil.example", null, true],
  ["a POST with Origin: null (sandboxed frame, file://)", "POST", "null", null, true],
  ["a DELETE from a foreign origin", "DELETE", "https://evil.example", null, true],
  ["a WebDAV method from a foreign origin", "PROPFIND", "https://evil.example", null, true],
  ["a WebSocket handshake from a foreign origin", "WEBSOCKET", "https://evil.example", null, true],
  ["a WebSocket handshake from the own origin", "WEBSOCKET", "http://gw.test:3000", null, false],
  ["a POST without Origin, with a same-origin Referer", "POST", null, "http://gw.test:3000/page?x=1", false],
  ["a POST without Origin, with a foreign Referer", "POST", null, "https://evil.example/page", true],
  ["a POST without Origin, with an unparseable Referer", "POST", null, "not a url", true],
  ["a POST with neither: a server-side client, no cookie to ride on", "POST", null, null, false],
  ["Origin decides over a same-origin Referer", "POST", "https://evil.example", "http://gw.test:3000/", true],
])("%s → refused: %p", (_name, method, origin, referer, refused) => {
  expect(isCrossSiteRefused({ method, origin, referer, trustedOrigins, ownOrigin })).toBe(refused);
});
