/**
 * Config is parsed once, validated and typed. An invalid environment fails at boot with one message
 * naming every bad variable (ConfigError).
 */
import type { ZodTypeAny, z } from 'zod';
import { ConfigError } from './errors.js';

export function parseConfig<S extends ZodTypeAny>(
  schema: S,
  env: Record<string, string | undefined>,
): z.infer<S> {
  const r = schema.safeParse(env);
  if (r.success) return r.data as z.infer<S>;
  const problems = r.error.issues.map((i) => {
    const key = i.path.join('.') || '(root)';
    return `${key}: ${i.message}${env[key] !== undefined ? ` (got ${JSON.stringify(env[key])})` : ''}`;
  });
  throw new ConfigError(problems);
}
