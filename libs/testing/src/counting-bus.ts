/**
 * A counting wrapper around any bus (the `Bus` contract of libs/bus, typed structurally so this
 * package need not depend on it): every `request` is counted per subject before it is forwarded
 * unchanged, so a test can assert which services a code path calls synchronously.
 */

export type CountingBus<B> = B & {
  /** Requests sent through this wrapper, per subject. */
  readonly counts: Map<string, number>;
  /** Requests whose subject starts with `prefix` (e.g. `identity.` or `policy.`). */
  requestsTo(prefix: string): number;
};

export function countingBus<B extends object>(bus: B): CountingBus<B> {
  const counts = new Map<string, number>();
  const requestsTo = (prefix: string): number => {
    let n = 0;
    for (const [s, c] of counts) if (s.startsWith(prefix)) n += c;
    return n;
  };
  return new Proxy(bus, {
    get(target, prop, receiver) {
      if (prop === 'counts') return counts;
      if (prop === 'requestsTo') return requestsTo;
      const v: unknown = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function') return v;
      if (prop === 'request') {
        return (subject: string, ...rest: unknown[]) => {
          counts.set(subject, (counts.get(subject) ?? 0) + 1);
          return (v as (...a: unknown[]) => unknown).call(target, subject, ...rest);
        };
      }
      return (v as (...a: unknown[]) => unknown).bind(target);
    },
  }) as CountingBus<B>;
}
