import { openapi } from "@elysiajs/openapi";

/**
 * The Swagger UI page at /swagger (spec at /swagger/json), listing Better Auth's routes
 * under their real /api/auth/... paths (from Better Auth's `openAPI()` schema).
 */
export function docsPlugin(schema: { paths: Record<string, unknown>; components: unknown }) {
  return openapi({
    path: "/swagger",
    specPath: "/swagger/json",
    provider: "swagger-ui",
    exclude: { paths: [/^\/api\//, /^\/swagger/] },
    documentation: {
      info: {
        title: "authgate",
        version: "0.1.0",
        description:
          "Authentication gateway. Better Auth routes are listed below; every other `/api/*` request is forwarded to the backend with a short-lived JWT in `Authorization: Bearer`.",
      },
      components: schema.components as never,
      paths: schema.paths as never,
    },
  });
}
