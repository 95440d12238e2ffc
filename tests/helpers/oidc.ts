import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import Provider from "oidc-provider";

/**
 * A real OpenID Connect provider on a loopback port (panva's oidc-provider, a certified
 * implementation), for the providers' tests: discovery, authorization code with PKCE, signed
 * ID tokens with the nonce, userinfo. Its login and consent are one small page a browser can
 * use: choose an account and "Continue", or "Cancel" (the client then gets access_denied).
 */
export interface OidcAccount {
  sub: string;
  email: string;
  emailVerified?: boolean;
  name: string;
}
export interface OidcClient {
  clientId: string;
  clientSecret: string;
  redirectUris: string[];
}
export interface TestOidcProvider {
  issuer: string;
  /** Query strings of the authorization requests the provider received. */
  authorizationRequests: URLSearchParams[];
  stop(): Promise<void>;
}

export async function startOidcProvider(options: { clients: OidcClient[]; accounts: OidcAccount[] }): Promise<TestOidcProvider> {
  const authorizationRequests: URLSearchParams[] = [];
  const sockets = new Set<Socket>();
  // oidc-provider ships no types (tests/helpers/oidc-provider.d.ts).
  let provider: any;
  const server = createServer((request: IncomingMessage, response: ServerResponse) => void handle(request, response));
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  provider = new Provider(issuer, {
    clients: options.clients.map((client) => ({
      client_id: client.clientId,
      client_secret: client.clientSecret,
      redirect_uris: client.redirectUris,
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    })),
    // PKCE is required for every client (oidc-provider's default for all: S256 only).
    pkce: { required: () => true },
    cookies: { keys: ["test-cookie-key-0123456789abcdef"] },
    claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
    // The ID token carries the claims too, not only userinfo.
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    async findAccount(_ctx: unknown, sub: string) {
      const account = options.accounts.find((candidate) => candidate.sub === sub);
      if (!account) return undefined;
      return {
        accountId: sub,
        async claims() {
          return { sub, email: account.email, email_verified: account.emailVerified ?? true, name: account.name };
        },
      };
    },
  });
  const callback = provider.callback();

  async function handle(request: IncomingMessage, response: ServerResponse) {
    const url = new URL(request.url ?? "/", issuer);
    try {
      if (url.pathname === "/auth") authorizationRequests.push(url.searchParams);
      const match = /^\/interaction\/([^/]+)$/.exec(url.pathname);
      if (match && request.method === "GET") {
        const details = await provider!.interactionDetails(request, response);
        const choices = options.accounts.map((account) => `<option value="${account.sub}">${account.email}</option>`).join("");
        response.setHeader("content-type", "text/html; charset=utf-8");
        response.end(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Test provider</title></head><body>
<h1>Test provider</h1><form method="post" action="/interaction/${details.uid}">
<label for="account">Account</label><select id="account" name="account">${choices}</select>
<button type="submit" name="decision" value="continue">Continue</button>
<button type="submit" name="decision" value="cancel">Cancel</button></form></body></html>`);
        return;
      }
      if (match && request.method === "POST") {
        const body = new URLSearchParams(await new Promise<string>((resolve) => {
          let text = "";
          request.on("data", (chunk) => (text += chunk));
          request.on("end", () => resolve(text));
        }));
        if (body.get("decision") !== "continue") {
          await provider!.interactionFinished(request, response, { error: "access_denied", error_description: "End-User aborted interaction" }, { mergeWithLastSubmission: false });
          return;
        }
        const details = await provider!.interactionDetails(request, response);
        const accountId = body.get("account")!;
        // Login and consent in one step: every requested scope is granted.
        const grant = new provider!.Grant({ accountId, clientId: String(details.params.client_id) });
        grant.addOIDCScope(String(details.params.scope));
        const grantId = await grant.save();
        await provider!.interactionFinished(request, response, { login: { accountId }, consent: { grantId } }, { mergeWithLastSubmission: false });
        return;
      }
      callback(request, response);
    } catch (error) {
      response.statusCode = 500;
      response.end(`test provider error: ${(error as Error).message}`);
    }
  }

  return {
    issuer,
    authorizationRequests,
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
