/**
 * Held follow-ups of browser logins on this replica: a `login-settled` broadcast wakes the ones
 * waiting for that login at once; the poll interval is the fallback, so a lost broadcast delays an
 * answer by at most one interval and never loses it (the truth is key-registry's Postgres row).
 */
export class LoginWaiters {
  private readonly waiting = new Map<string, Set<() => void>>();

  /** Resolves when the login settles here, after `ms`, or when `closed` says the client left. */
  wait(loginId: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      let set = this.waiting.get(loginId);
      if (!set) {
        set = new Set();
        this.waiting.set(loginId, set);
      }
      const done = (): void => {
        clearTimeout(timer);
        const s = this.waiting.get(loginId);
        s?.delete(done);
        if (s?.size === 0) this.waiting.delete(loginId);
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      set.add(done);
    });
  }

  settled(loginId: string): void {
    for (const wake of [...(this.waiting.get(loginId) ?? [])]) wake();
  }

  get size(): number {
    let n = 0;
    for (const s of this.waiting.values()) n += s.size;
    return n;
  }
}
