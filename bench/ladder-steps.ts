/**
 * The rungs of the ablation ladder, in the order the gateway does the work on its proxy
 * thread (src/app.ts `route()`, then the app's `resolve` and the proxy stage). Each adds one
 * thing to the one before; bench/ladder-server.ts implements them with the gateway's modules.
 */
export const LADDER_STEPS = [
  { id: "context", label: "+ request context (request id, client address, trusted proxies)" },
  { id: "path", label: "+ protocol and path rules, route match" },
  { id: "csrf", label: "+ CSRF check" },
  { id: "identity", label: "+ session and JWT cache lookup" },
  { id: "headers", label: "+ header rewrite, both ways" },
  { id: "forward", label: "+ the gateway's forward (its abort controller, header deadline)" },
  { id: "timeouts", label: "+ idle-timeout call" },
  { id: "metrics", label: "+ metrics" },
  { id: "log", label: "+ the log line" },
] as const;
