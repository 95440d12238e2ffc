import { openapi } from "@elysiajs/openapi";
import { Elysia } from "elysia";
// Embedded into the compiled binary (`with { type: "file" }`): the page works with no internet.
import swaggerBundle from "swagger-ui-dist/swagger-ui-bundle.js" with { type: "file" };
import swaggerCss from "swagger-ui-dist/swagger-ui.css" with { type: "file" };

const ASSETS = "/swagger/assets";

/**
 * The Swagger UI page at /swagger (spec at /swagger/json), listing Better Auth's routes
 * under their real /api/auth/... paths (from Better Auth's `openAPI()` schema). Swagger UI's
 * script and stylesheet are served by the gateway itself, not from a CDN.
 */
export function docsPlugin(schema: { paths: Record<string, unknown>; components: unknown }, pagesPath?: string) {
  return new Elysia({ name: "authgate/docs" })
    .get(`${ASSETS}/swagger-ui-bundle.js`, () => assetResponse(swaggerBundle, "text/javascript; charset=utf-8"))
    .get(`${ASSETS}/swagger-ui.css`, () => assetResponse(swaggerCss, "text/css; charset=utf-8"))
    .use(
      openapi({
        path: "/swagger",
        specPath: "/swagger/json",
        provider: "swagger-ui",
        swagger: { cdn: `${ASSETS}/swagger-ui-bundle.js`, theme: `${ASSETS}/swagger-ui.css`, autoDarkMode: false },
        // The sign-in pages are HTML for people, not part of the API.
        exclude: { paths: [/^\/api\//, /^\/swagger/, /^\/(healthz|readyz|metrics)$/, ...(pagesPath ? [new RegExp(`^${pagesPath.replace(/[.]/g, "\\.")}(/|$)`)] : [])] },
        documentation: {
          info: {
            title: "authgate",
            version: "0.1.0",
            description:
              "Authentication gateway. Better Auth routes are listed below. Other paths go by the gateway's route table: to a backend, with a short-lived JWT in `Authorization: Bearer` where the route identifies the caller, or to static files.",
          },
          components: schema.components as never,
          paths: schema.paths as never,
        },
      }),
    );
}

function assetResponse(path: string, contentType: string): Response {
  return new Response(Bun.file(path), { headers: { "content-type": contentType, "cache-control": "public, max-age=86400" } });
}
