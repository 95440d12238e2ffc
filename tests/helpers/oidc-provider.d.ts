// oidc-provider ships no types; the test helper uses a handful of its calls.
declare module "oidc-provider";
