/**
 * Reads admin API request bodies: at most MAX_ADMIN_BODY_BYTES (checked against Content-Length
 * before reading, and again while reading chunked bodies), parsed with parseJsonLimited (at most
 * MAX_ADMIN_JSON_DEPTH levels of nesting). It runs as a Nest interceptor so that every refusal is
 * a domain error going through AdminExceptionFilter, the one place that picks statuses: too large
 * is 413 (`too_large`), malformed or too deep is 400 (`invalid_input`). Any body is read as JSON,
 * whatever its Content-Type; a request without a body gets `undefined`.
 */
import type { IncomingMessage } from 'node:http';
import { Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import { ValidationError, parseJsonLimited } from '@switchboard/common';
import type { Observable } from 'rxjs';
import { AdminError } from './admin.errors.js';

/** The largest body accepted: a policy is at most 1 MiB of text, JSON escaping can nearly double it. */
export const MAX_ADMIN_BODY_BYTES = 2 << 20;
/** Admin bodies are flat objects; 64 levels is far beyond any of them. */
export const MAX_ADMIN_JSON_DEPTH = 64;

function tooLarge(what: string, size: string, maxBytes: number): AdminError {
  return new AdminError(
    'too_large',
    `${what}: the request body (${size}) is over the admin API limit of ${maxBytes} bytes (${maxBytes / (1 << 20)} MiB)`,
    'a policy may be at most 1 MiB (1048576 bytes) of HuJSON; shorten it (groups and hosts help), and send other requests as small JSON objects',
  );
}

/** Reads the whole body of `req` and parses it as JSON; undefined when there is no body. */
export async function readJsonBody(
  req: IncomingMessage,
  what: string,
  maxBytes = MAX_ADMIN_BODY_BYTES,
): Promise<unknown> {
  const body = await readBodyBytes(req, what, maxBytes);
  if (body === undefined) return undefined;
  return parseJsonLimited(body, { maxDepth: MAX_ADMIN_JSON_DEPTH, maxBytes, what });
}

/** Reads the whole body of `req` (at most `maxBytes`); undefined when there is none. */
export async function readBodyBytes(
  req: IncomingMessage,
  what: string,
  maxBytes = MAX_ADMIN_BODY_BYTES,
): Promise<Buffer | undefined> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBytes)
    throw tooLarge(what, `${declared} bytes`, maxBytes);
  if (declared === '0' || (declared === undefined && req.headers['transfer-encoding'] === undefined))
    return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
      if (err) reject(err);
      else resolve();
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) {
        chunks.length = 0;
        done(tooLarge(what, `more than ${maxBytes} bytes`, maxBytes));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => done();
    const onAborted = (): void =>
      done(new ValidationError(`${what}: the client closed the connection before sending the whole body`));
    const onError = (err: Error): void =>
      done(new ValidationError(`${what}: the request body could not be read (${err.message})`));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
  if (size === 0) return undefined;
  return Buffer.concat(chunks, size);
}

/** Sets `req.body` from the JSON body before the handler's parameters are read. */
@Injectable()
export class JsonBodyInterceptor implements NestInterceptor {
  async intercept(context: ExecutionContext, next: CallHandler): Promise<Observable<unknown>> {
    const req = context.switchToHttp().getRequest<IncomingMessage & { body?: unknown }>();
    const path = (req.url ?? '').split('?')[0] ?? '';
    req.body = await readJsonBody(req, `${req.method ?? 'request'} ${path}`);
    return next.handle();
  }
}
