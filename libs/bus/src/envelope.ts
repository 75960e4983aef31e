/**
 * The wire format shared by both bus implementations, so that a payload or an error travels the
 * same way through NATS and through the in-process bus:
 * - every payload is JSON text (`undefined` travels as `null`; anything JSON cannot carry, or nested
 *   deeper than BUS_MAX_JSON_DEPTH, is refused at the sender with an `invalid_input` ValidationError);
 * - a reply is an envelope `{ ok: true, result }` or `{ ok: false, error: { code, message, hint?, details? } }`;
 * - a handler that throws a SwitchboardError sends its code back; anything else becomes `internal`
 *   (logged with the subject, never crashing the process); unparsable request JSON gets `invalid_input`;
 * - received JSON is parsed with parseJsonLimited: at most BUS_MAX_JSON_DEPTH levels of nesting and
 *   the bus payload limit, so a hostile or corrupt message is refused (answered with
 *   `invalid_input`, or logged and skipped) instead of overflowing the stack of whoever walks it.
 */
import {
  RemoteError,
  SwitchboardError,
  ValidationError,
  errorMessage,
  findDepthExcess,
  parseJsonLimited,
  type Logger,
} from '@switchboard/common';

/** NATS' default `max_payload`; the in-process bus enforces the same limit. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;

/**
 * The deepest nesting accepted in a received message. Our messages nest fewer than 10 levels
 * (records in a list in a reply envelope; Hostinfo is bounded at the client edge); the bound stops
 * a stack overflow in consumers (zod, JSON.stringify) and leaves room for records stored before
 * Hostinfo was reduced to its known fields.
 */
export const BUS_MAX_JSON_DEPTH = 256;

export interface ErrorBody {
  code: string;
  message: string;
  hint?: string;
  details?: Record<string, unknown>;
}

export type ReplyEnvelope = { ok: true; result?: unknown } | { ok: false; error: ErrorBody };

/** The bus was closed: no more requests, publications or subscriptions. */
export class BusClosedError extends SwitchboardError {
  constructor(what: string) {
    super(
      'unavailable',
      `cannot ${what}: the bus is closed`,
      'this is a shutdown race or a use after close()',
    );
  }
}

/**
 * Serialises a payload to JSON text, refusing what JSON cannot carry faithfully (BigInt, cycles,
 * functions, symbols) and payloads over `maxBytes`, with an error naming the subject.
 */
export function encodePayload(
  subject: string,
  payload: unknown,
  maxBytes = DEFAULT_MAX_PAYLOAD_BYTES,
): string {
  if (payload === undefined) return 'null';
  let text: string | undefined;
  try {
    text = JSON.stringify(payload);
  } catch (err) {
    throw new ValidationError(
      `payload for "${subject}" is not JSON-serialisable: ${errorMessage(err)}`,
      'bus payloads must be plain JSON values (no BigInt, cycles, functions or class instances with state)',
    );
  }
  if (text === undefined) {
    throw new ValidationError(
      `payload for "${subject}" is not JSON-serialisable: ${typeof payload}`,
      'bus payloads must be plain JSON values',
    );
  }
  const size = Buffer.byteLength(text, 'utf8');
  if (size > maxBytes) {
    throw new ValidationError(
      `payload for "${subject}" is ${size} bytes, over the bus limit of ${maxBytes} bytes`,
      'send a reference (an id) instead of the whole value, or split the message',
    );
  }
  if (findDepthExcess(text, BUS_MAX_JSON_DEPTH) >= 0) {
    throw new ValidationError(
      `payload for "${subject}" is nested deeper than ${BUS_MAX_JSON_DEPTH} levels, which receivers refuse`,
      'flatten the value; input from outside should have been bounded where it entered',
    );
  }
  return text;
}

/**
 * Parses JSON text received from the bus; throws a ValidationError naming the subject if it is not
 * JSON, is nested deeper than BUS_MAX_JSON_DEPTH or is over `maxBytes`.
 */
export function decodePayload(subject: string, text: string, maxBytes = DEFAULT_MAX_PAYLOAD_BYTES): unknown {
  return parseJsonLimited(text, { maxDepth: BUS_MAX_JSON_DEPTH, maxBytes, what: `message on "${subject}"` });
}

function errorBody(err: SwitchboardError): ErrorBody {
  return err.toJSON();
}

/** Encodes an error envelope; details that JSON cannot carry are dropped rather than losing the error. */
export function encodeError(body: ErrorBody): string {
  try {
    return JSON.stringify({ ok: false, error: body } satisfies ReplyEnvelope);
  } catch {
    const { details: _dropped, ...rest } = body;
    return JSON.stringify({ ok: false, error: rest } satisfies ReplyEnvelope);
  }
}

/**
 * Runs a request handler on raw request text and returns the raw reply text. Never throws: every
 * failure becomes an error envelope (see the module comment for the mapping).
 */
export async function handleRequest(
  subject: string,
  requestText: string,
  handler: (payload: unknown) => Promise<unknown>,
  logger: Logger,
  maxBytes = DEFAULT_MAX_PAYLOAD_BYTES,
): Promise<string> {
  let payload: unknown;
  try {
    payload = decodePayload(subject, requestText, maxBytes);
  } catch (err) {
    logger.warn('malformed request refused', { subject, err });
    return encodeError(errorBody(err as SwitchboardError));
  }
  let result: unknown;
  try {
    result = await handler(payload);
  } catch (err) {
    if (err instanceof SwitchboardError) {
      logger.debug('request handler answered with an error', { subject, code: err.code, err });
      return encodeError(errorBody(err));
    }
    logger.error('request handler failed', { subject, err });
    return encodeError({
      code: 'internal',
      message: `internal error while handling "${subject}"`,
      hint: 'see the serving service logs for the cause',
    });
  }
  try {
    const resultText =
      result === undefined ? undefined : encodePayload(subject, result, Number.MAX_SAFE_INTEGER);
    const reply = resultText === undefined ? '{"ok":true}' : `{"ok":true,"result":${resultText}}`;
    if (Buffer.byteLength(reply, 'utf8') > maxBytes) {
      throw new ValidationError(`reply for "${subject}" is over the bus limit of ${maxBytes} bytes`);
    }
    return reply;
  } catch (err) {
    logger.error('request handler returned a reply that cannot be sent', { subject, err });
    return encodeError({
      code: 'internal',
      message: `internal error while handling "${subject}": the reply cannot be sent (${errorMessage(err)})`,
    });
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Decodes raw reply text: returns the result, or throws a RemoteError carrying the remote code, message and hint. */
export function decodeReply(
  subject: string,
  replyText: string,
  maxBytes = DEFAULT_MAX_PAYLOAD_BYTES,
): unknown {
  let env: unknown;
  try {
    env = parseJsonLimited(replyText, {
      maxDepth: BUS_MAX_JSON_DEPTH,
      maxBytes,
      what: `reply on "${subject}"`,
    });
  } catch (err) {
    throw new RemoteError(
      'internal',
      `malformed ${errorMessage(err)}`,
      'the serving service sent something that is not a reply envelope; see its logs',
    );
  }
  if (isRecord(env) && env.ok === true) return env.result;
  if (isRecord(env) && env.ok === false && isRecord(env.error)) {
    const e = env.error;
    const code = typeof e.code === 'string' ? e.code : 'internal';
    const message = typeof e.message === 'string' ? e.message : `error reply on "${subject}"`;
    const hint = typeof e.hint === 'string' ? e.hint : undefined;
    const details = isRecord(e.details) ? e.details : undefined;
    throw new RemoteError(code, message, hint, details);
  }
  throw new RemoteError('internal', `malformed reply on "${subject}": not a reply envelope`);
}

export function noRespondersError(subject: string): RemoteError {
  return new RemoteError(
    'unavailable',
    `nothing is serving "${subject}"`,
    'is the service that answers it running and connected to the bus?',
  );
}

export function timeoutError(subject: string, timeoutMs: number): RemoteError {
  return new RemoteError(
    'timeout',
    `no reply on "${subject}" within ${timeoutMs} ms`,
    'is the service that answers it running and healthy? check its logs; it may be overloaded or stuck',
  );
}
