/**
 * The legacy (pre-Noise) control channel at the client edge, for tailscale clients up to v1.62
 * offered only the legacy key by `/key`: `POST /machine/<machine key hex>` (register) and
 * `POST /machine/<machine key hex>/map` over plain HTTP, every body a NaCl box between the machine
 * key in the path and the server's legacy key (libs/protocol `legacy`). After opening, a request
 * takes exactly the Noise path: the same boundary parsers (`parseRegisterRequest`,
 * `parseMapRequest`), the same `ControlHandlers` (registration, map stream, fan-out, revocation);
 * only the answers are sealed again. A body that does not open, a replayed nonce or a malformed
 * request is answered 400 with a plain-text reason and logged (rate-limited), never thrown.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorMessage, LimitedLogger, type Logger, SwitchboardError } from '@switchboard/common';
import {
  LegacyBoxKey,
  NonceReplayGuard,
  ProtocolError,
  parseMapRequest,
  parseRegisterRequest,
  sealMapFrames,
  type LegacyRoute,
  type PrivateKey,
} from '@switchboard/protocol';
import type { ControlContext, ControlHandlers, MapResponder } from './control-handlers.js';
import { fromMapRequest, fromRegisterRequest } from './tailcfg-adapter.js';

export interface LegacyChannelOptions {
  legacyPrivate: PrivateKey;
  handlers: ControlHandlers;
  logger: Logger;
  /** Oldest MapRequest.Version served here (the Noise minimum does not apply to this channel). */
  minCapVersion: number;
  maxBody: number;
  bodyTimeoutMs: number;
}

/** A map stream's unsent bytes beyond this drop the client (it reconnects), as on the Noise edge. */
const MAX_BUFFERED = 8 << 20;

export class LegacyChannel {
  private readonly replay = new NonceReplayGuard();
  private readonly log: Logger;
  counters = { requests: 0, refused: 0 };

  constructor(private readonly o: LegacyChannelOptions) {
    this.log = new LimitedLogger(o.logger, { linesPerWindow: 30 });
  }

  handle(req: IncomingMessage, res: ServerResponse, route: LegacyRoute): void {
    this.counters.requests++;
    if (req.method !== 'POST')
      return this.refuse(res, 405, `${route.endpoint} on the legacy channel takes POST`);
    const ctx: ControlContext = { machineKey: route.machineKeyText, capVersion: 0 };
    let key: LegacyBoxKey;
    try {
      key = new LegacyBoxKey(this.o.legacyPrivate, route.machineKey);
    } catch (err) {
      return this.refuseFor(res, route, err);
    }
    readBody(req, this.o.maxBody, this.o.bodyTimeoutMs)
      .then((sealed) => {
        const body = key.open(sealed);
        // Only a body that opened counts: anyone could otherwise fill the guard with junk.
        this.replay.check(sealed);
        return route.endpoint === 'register'
          ? this.register(ctx, key, body, res)
          : this.map(ctx, key, body, res);
      })
      .catch((err: unknown) => this.refuseFor(res, route, err));
  }

  private async register(
    ctx: ControlContext,
    key: LegacyBoxKey,
    body: Buffer,
    res: ServerResponse,
  ): Promise<void> {
    // Legacy clients send RegisterRequest.Version 1 (their capability version comes with the map).
    const r = await this.o.handlers.register(ctx, fromRegisterRequest(parseRegisterRequest(body)));
    if (typeof r.body === 'string') return this.refuse(res, r.status, r.body);
    const sealed = key.seal(Buffer.from(JSON.stringify(r.body), 'utf8'));
    res.writeHead(r.status, { 'content-type': 'application/octet-stream' }).end(sealed);
  }

  private async map(
    ctx: ControlContext,
    key: LegacyBoxKey,
    body: Buffer,
    res: ServerResponse,
  ): Promise<void> {
    const req = fromMapRequest(parseMapRequest(body));
    if (req.version < this.o.minCapVersion) {
      this.log.warn('refused a legacy client older than LEGACY_MIN_CAPABILITY_VERSION', {
        machineKey: ctx.machineKey,
        capVersion: req.version,
        minimum: this.o.minCapVersion,
      });
      return this.refuse(
        res,
        400,
        `unsupported client: capability version ${req.version} is below the legacy channel's minimum ${this.o.minCapVersion}; update tailscale`,
      );
    }
    await this.o.handlers.map({ ...ctx, capVersion: req.version }, req, new LegacyMapResponder(res, key));
  }

  private refuseFor(res: ServerResponse, route: LegacyRoute, err: unknown): void {
    this.counters.refused++;
    if (err instanceof ProtocolError && (err.code === 'legacy_box_invalid' || err.code === 'legacy_replay')) {
      this.log.warn('refused a legacy request', {
        endpoint: route.endpoint,
        machineKey: route.machineKeyText,
        reason: err.message,
        hint: err.hint,
      });
      return this.refuse(res, 400, err.message);
    }
    if (err instanceof ProtocolError && (err.code === 'body_too_large' || err.code === 'timeout')) {
      this.log.warn('refused a legacy request', { endpoint: route.endpoint, reason: err.message });
      return this.refuse(res, err.code === 'timeout' ? 408 : 413, err.message);
    }
    if (err instanceof SwitchboardError && err.code === 'invalid_input') {
      this.log.warn('malformed legacy request', {
        endpoint: route.endpoint,
        machineKey: route.machineKeyText,
        err: err.message,
      });
      return this.refuse(res, 400, err.message);
    }
    this.log.error('legacy request failed', {
      endpoint: route.endpoint,
      machineKey: route.machineKeyText,
      err: errorMessage(err),
    });
    this.refuse(res, 500, 'internal error; the client will retry');
  }

  private refuse(res: ServerResponse, status: number, message: string): void {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
    res.end(message.endsWith('\n') ? message : message + '\n');
  }
}

/** Reads a whole request body up to `limit` bytes within `timeoutMs`. */
function readBody(req: IncomingMessage, limit: number, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => {
      req.destroy();
      reject(new ProtocolError('timeout', `request body did not arrive within ${timeoutMs} ms`));
    }, timeoutMs);
    timer.unref();
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        clearTimeout(timer);
        req.removeAllListeners('data');
        req.resume();
        reject(new ProtocolError('body_too_large', `request body exceeds ${limit} bytes`));
        return;
      }
      parts.push(c);
    });
    req.once('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(parts, size));
    });
    req.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** A map stream over an HTTP/1.1 response; each wire frame from the engine is sealed for this client. */
class LegacyMapResponder implements MapResponder {
  private closeCbs: (() => void)[] = [];
  private ended = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly key: LegacyBoxKey,
  ) {
    res.once('close', () => {
      this.ended = true;
      for (const cb of this.closeCbs) cb();
      this.closeCbs = [];
    });
  }
  get closed(): boolean {
    return this.ended || this.res.destroyed;
  }
  start(): void {
    if (this.closed) return;
    this.res.writeHead(200, { 'content-type': 'application/octet-stream' });
    this.res.flushHeaders();
  }
  write(frame: Buffer): void {
    if (this.closed) return;
    if (this.res.writableLength > MAX_BUFFERED) {
      this.res.destroy();
      return;
    }
    this.res.write(sealMapFrames(frame, this.key));
  }
  end(graceMs?: number): void {
    if (this.closed) return;
    if (!this.res.headersSent) this.res.writeHead(200);
    this.res.end();
    if (graceMs === undefined) return;
    const res = this.res;
    setTimeout(() => {
      if (!res.destroyed && !res.writableFinished) res.destroy();
    }, graceMs).unref();
  }
  fail(status: number, message: string): void {
    if (this.closed || this.res.headersSent) return;
    this.res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
    this.res.end(message + '\n');
  }
  onClose(cb: () => void): void {
    if (this.closed) cb();
    else this.closeCbs.push(cb);
  }
}
