import { expect, test } from "bun:test";
import { AUTH_BODY_LIMIT, authBodyRefused, routeBodyRefused, type DeclaredBody } from "../src/proxy/limits";

const declared = (contentLength: string | null, transferEncoding: string | null = null, hasBody = contentLength !== null || transferEncoding !== null): DeclaredBody => ({
  contentLength,
  transferEncoding,
  hasBody,
});

test.each<[string, DeclaredBody, number, number | undefined]>([
  ["no body", declared(null), 10, undefined],
  ["at the limit", declared("10"), 10, undefined],
  ["one byte over", declared("11"), 10, 413],
  ["no limit (0)", declared(String(2 ** 40)), 0, undefined],
  ["chunked: metered while it streams, not here", declared(null, "chunked"), 10, undefined],
])("a route's max_body_bytes: %s → %p", (_name, body, limit, status) => {
  expect(routeBodyRefused(body, limit)?.status).toBe(status);
});

test.each<[string, DeclaredBody, number | undefined]>([
  ["a small JSON body", declared("120"), undefined],
  ["at 64 KB", declared(String(AUTH_BODY_LIMIT)), undefined],
  ["over 64 KB", declared(String(AUTH_BODY_LIMIT + 1)), 413],
  ["chunked, no length: Better Auth would read it whole", declared(null, "chunked"), 411],
  ["no body at all", declared(null), undefined],
])("Better Auth's routes: %s → %p", (_name, body, status) => {
  expect(authBodyRefused(body)?.status).toBe(status);
});
