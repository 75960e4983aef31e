/**
 * Bookkeeping for in-flight handler work, shared by both bus implementations: `unsubscribe()` and
 * `close()` wait for running handlers, except the one they are called from (awaiting your own
 * handler from inside it would never resolve), which is recognised through AsyncLocalStorage.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

const currentOwners = new AsyncLocalStorage<ReadonlySet<object>>();

/** Tracks the promises of handlers run on behalf of one owner (a server, a subscriber, a consumer). */
export class InFlight {
  private readonly running = new Set<Promise<unknown>>();

  /** Runs `fn` as work of this owner; the returned promise never rejects for bookkeeping reasons. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const outer = currentOwners.getStore();
    const owners = new Set<object>(outer ?? []);
    owners.add(this);
    const p = currentOwners.run(owners, fn);
    const tracked = p.then(
      () => undefined,
      () => undefined,
    );
    this.running.add(tracked);
    void tracked.then(() => this.running.delete(tracked));
    return p;
  }

  /** Resolves once every running handler of this owner has settled (skipped when called from one of them). */
  async drain(): Promise<void> {
    if (isInside(this)) return;
    while (this.running.size > 0) await Promise.all([...this.running]);
  }

  get size(): number {
    return this.running.size;
  }
}

/** Whether the caller runs inside work of `owner` (directly or transitively). */
export function isInside(owner: object): boolean {
  return currentOwners.getStore()?.has(owner) ?? false;
}

/** Runs `fn` marked as work of `owner` (for loops that are their own owner, such as event consumers). */
export function runAs<T>(owner: object, fn: () => Promise<T>): Promise<T> {
  const owners = new Set<object>(currentOwners.getStore() ?? []);
  owners.add(owner);
  return currentOwners.run(owners, fn);
}
