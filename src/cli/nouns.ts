/**
 * The admin commands' first words, for src/main.ts to recognise them without loading the
 * commands (and Better Auth with them) on every start. src/cli/commands.ts checks it agrees.
 */
export const ADMIN_NOUNS: ReadonlySet<string> = new Set(["user", "sessions", "apikey", "keys"]);
