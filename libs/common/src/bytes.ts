/** Small assert helpers for byte inputs: they say what was wrong instead of failing later. */
import { ValidationError } from './errors.js';

export function assertBytes(
  value: unknown,
  length: number | undefined,
  what: string,
): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array))
    throw new ValidationError(`${what}: expected bytes, got ${typeof value}`);
  if (length !== undefined && value.length !== length)
    throw new ValidationError(`${what}: expected ${length} bytes, got ${value.length}`);
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
