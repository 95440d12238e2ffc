import { afterAll, beforeAll, expect, test } from "bun:test";
import { startBackend, type TestBackend } from "./helpers/backend";
import { signUp, startGateway, tempDir } from "./helpers/gateway";

let backend: TestBackend;
let dir: ReturnType<typeof tempDir>;

beforeAll(() => {
  dir = tempDir();
  backend = startBackend();
});
afterAll(async () => {
  await backend.stop();
  dir.remove();
});

test("sessions and the signing key survive a restart on the same database file", async () => {
  const first = await startGateway({ BACKEND_API_URL: backend.url }, dir.path);
  const { cookie, user } = await signUp(first.url);
  const keysBefore = await (await fetch(first.url + "/api/auth/jwks")).json();
  await first.stop();

  const second = await startGateway({ BACKEND_API_URL: backend.url }, dir.path);
  try {
    backend.trustGateway(second.url, second.url);
    const response = await fetch(second.url + "/api/after-restart", { headers: { cookie } });
    expect(response.status).toBe(200);
    const seen = backend.received.at(-1)!;
    expect(seen.target).toBe("/api/after-restart");
    expect(seen.jwtError).toBeUndefined();
    expect(seen.claims?.sub).toBe(user.id);
    // The same key is still the one published and used: no new key per start.
    expect(await (await fetch(second.url + "/api/auth/jwks")).json()).toEqual(keysBefore);
  } finally {
    await second.stop();
  }
});
