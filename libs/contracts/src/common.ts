/**
 * Shared contract helpers: every message crossing a service boundary is validated with a zod schema
 * on arrival; a bad message becomes a ValidationError naming the subject and the offending path.
 */
import { ValidationError } from '@switchboard/common';
import type { ZodTypeAny, z } from 'zod';

export function validateMessage<S extends ZodTypeAny>(schema: S, value: unknown, what: string): z.infer<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data as z.infer<S>;
  const issues = r.error.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
  throw new ValidationError(
    `${what}: invalid message: ${issues}`,
    'the sender and receiver disagree on the contract; check both run the same version',
  );
}
