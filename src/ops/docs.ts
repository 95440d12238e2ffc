import { openapi } from "@elysiajs/openapi";
import { AUTH_BASE_PATH, type Auth } from "../auth";

/**
 * The Swagger UI page at /swagger (spec at /swagger/json), listing Better Auth's routes
 * under their real paths: Better Auth's own schema is relative to its base path.
 */
export async function docsPlugin(auth: Auth) {
  const schema = await auth.api.generateOpenAPISchema();
  const paths = Object.fromEntries(
    Object.entries(schema.paths ?? {}).map(([path, item]) => [AUTH_BASE_PATH + path, item]),
  );
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
      paths: paths as never,
    },
  });
}
