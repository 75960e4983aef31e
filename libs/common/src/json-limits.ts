/**
 * JSON parsing with a size limit and a nesting-depth limit, for every boundary that reads JSON from
 * outside the process (client requests, bus messages, admin API bodies).
 *
 * V8's JSON.parse is iterative and accepts any depth, but almost everything done with the value
 * afterwards is recursive (JSON.stringify, zod, structured clone, deep equality): a 20,000-deep
 * array parses fine and then blows the stack far from the boundary, as a 500 with an internal
 * message. So the depth is checked before parsing, in one linear pass over the text that counts
 * `{`/`[` outside strings, and the input is refused with a ValidationError naming the limit.
 * The pass does not validate the JSON; JSON.parse does that afterwards. Unbalanced input can only
 * make the counted depth lower than a real parse would reach if it is malformed, which JSON.parse
 * then refuses.
 */
import { ValidationError } from './errors.js';

export interface JsonLimits {
  /** The deepest nesting of objects and arrays accepted; `[]` and `{}` are depth 1, a scalar 0. */
  maxDepth: number;
  /** The largest input accepted, in bytes of UTF-8. */
  maxBytes: number;
  /** What is being parsed, for error messages: "register request", `message on "keyreg.v1.x"`. */
  what: string;
}

/** Depth that every message we exchange stays well within; clients' deepest is Hostinfo.NetInfo.DERPLatency (4). */
export const DEFAULT_JSON_MAX_DEPTH = 64;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/**
 * The position of the first bracket that opens nesting level `maxDepth + 1` (outside strings), or
 * -1 when the input stays within `maxDepth`. Works on text or on UTF-8 bytes alike: the bytes of
 * a multi-byte UTF-8 sequence are all >= 0x80, so they never look like a quote or a bracket.
 */
export function findDepthExcess(input: string | Uint8Array, maxDepth: number): number {
  let depth = 0;
  let inString = false;
  if (typeof input === 'string') {
    const n = input.length;
    for (let i = 0; i < n; i++) {
      const c = input.charCodeAt(i);
      if (inString) {
        if (c === BACKSLASH) i++;
        else if (c === QUOTE) inString = false;
      } else if (c === QUOTE) inString = true;
      else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
        if (++depth > maxDepth) return i;
      } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--;
    }
    return -1;
  }
  const n = input.length;
  for (let i = 0; i < n; i++) {
    const c = input[i]!;
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (++depth > maxDepth) return i;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--;
  }
  return -1;
}

/**
 * Parses JSON text or UTF-8 bytes, refusing input over `maxBytes` or nested deeper than
 * `maxDepth`, and input that is not JSON. Every refusal is a ValidationError (code
 * `invalid_input`) whose message starts with `what` and names the limit; `details.limit` says
 * which one (`bytes`, `depth` or `syntax`) for callers that answer differently (e.g. 413).
 */
export function parseJsonLimited(input: string | Uint8Array, limits: JsonLimits): unknown {
  const { maxDepth, maxBytes, what } = limits;
  const size = typeof input === 'string' ? Buffer.byteLength(input, 'utf8') : input.byteLength;
  if (size > maxBytes) {
    throw new ValidationError(
      `${what}: ${size} bytes is over the limit of ${maxBytes} bytes`,
      'send a smaller body',
      { limit: 'bytes', maxBytes, size },
    );
  }
  const at = findDepthExcess(input, maxDepth);
  if (at >= 0) {
    throw new ValidationError(
      `${what}: JSON nested deeper than ${maxDepth} levels (at offset ${at})`,
      `nest objects and arrays at most ${maxDepth} levels deep`,
      { limit: 'depth', maxDepth },
    );
  }
  const text =
    typeof input === 'string'
      ? input
      : Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ValidationError(
      `${what}: body is not valid JSON (${syntaxMessage(err)})`,
      'send a JSON document',
      { limit: 'syntax' },
    );
  }
}

/** V8's SyntaxError message, with any quoted excerpt of the input cut short. */
function syntaxMessage(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  return m.length > 200 ? `${m.slice(0, 200)}…` : m;
}
