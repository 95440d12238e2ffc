/** A list that can be awaited: `next(match)` resolves with the first item (already there or to come) that matches. */
export class Feed<T> {
  readonly items: T[] = [];
  private waiters: { match: (item: T) => boolean; resolve: (item: T) => void }[] = [];

  push(item: T): void {
    this.items.push(item);
    this.waiters = this.waiters.filter((waiter) => {
      if (!waiter.match(item)) return true;
      waiter.resolve(item);
      return false;
    });
  }

  next(match: (item: T) => boolean = () => true): Promise<T> {
    const found = this.items.find(match);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }
}

/**
 * Polls `check` every 100 ms until it holds, at most `attempts` times: for what shows only once
 * a cache's time bound runs out (another instance's change, SESSION_CACHE_SECONDS), where there
 * is no event to await.
 */
export async function eventually(check: () => Promise<boolean>, what: string, attempts = 60): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    if (await check()) return;
    await Bun.sleep(100);
  }
  throw new Error(`never happened: ${what}`);
}

/** Resolves once `condition` holds, checked after each turn of the event loop (no fixed sleep). */
export async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}
