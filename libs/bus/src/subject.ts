/**
 * NATS subject rules, used by the in-process bus to behave like NATS: dot-separated tokens, `*`
 * matches exactly one token, `>` (last token only) matches one or more tokens.
 */
import { ValidationError } from '@switchboard/common';

const tokenRe = /^[^\s.*>]+$/;

/** Throws a ValidationError unless `subject` is a valid subject (or, with `wildcards`, a valid pattern). */
export function assertSubject(subject: string, wildcards: boolean): void {
  const tokens = typeof subject === 'string' ? subject.split('.') : [];
  const ok =
    tokens.length > 0 &&
    tokens.every((t, i) => {
      if (tokenRe.test(t)) return true;
      if (!wildcards) return false;
      return t === '*' || (t === '>' && i === tokens.length - 1);
    });
  if (!ok) {
    throw new ValidationError(
      `invalid subject ${JSON.stringify(subject)}`,
      wildcards
        ? 'subjects are dot-separated tokens without spaces; `*` matches one token, `>` the rest'
        : 'subjects are dot-separated tokens without spaces or wildcards',
    );
  }
}

/** Whether a concrete subject matches a (possibly wildcard) pattern. */
export function subjectMatches(pattern: string, subject: string): boolean {
  if (pattern === subject) return true;
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    const pt = p[i];
    if (pt === '>') return s.length > i;
    if (i >= s.length) return false;
    if (pt !== '*' && pt !== s[i]) return false;
  }
  return p.length === s.length;
}
