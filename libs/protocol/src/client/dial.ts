/**
 * Client side of the /ts2021 upgrade, as tailscaled does it: a raw HTTP/1.1 `POST /ts2021` with
 * the Noise initiation in X-Tailscale-Handshake over net.connect (or TLS without certificate checks
 * for https URLs, like controlhttp), a careful read of the 101 headers (the Noise response may
 * share their TCP segment), the handshake, then a NoiseConn. dialControl adds prior-knowledge
 * HTTP/2 on top. Used by tests and the load generator, so it keeps per-connection state small.
 */
import * as http2 from 'node:http2';
import type { ClientHttp2Session } from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { CURRENT_CAPVER } from '../capver.js';
import { ProtocolError } from '../errors.js';
import type { MachinePublic, PrivateKey } from '../keys.js';
import { initiate } from '../noise/handshake.js';
import { readHandshakeReply } from '../noise/messages.js';
import { NoiseConn } from '../noise/noise-conn.js';
import type { EarlyNoise } from '../tailcfg.js';
import { HANDSHAKE_HEADER, TS2021_PATH, UPGRADE_PROTOCOL } from '../ts2021-server.js';

export interface DialNoiseOptions {
  /** Control server URL, `http://host:port` or `https://...`; any path is ignored (like tailscaled). */
  url: string;
  machinePrivate: PrivateKey;
  /** The server's Noise key, from fetchServerKey(). */
  serverPublic: MachinePublic;
  /** Capability version to announce (default CURRENT_CAPVER). */
  capVersion?: number;
  /** Whole-dial timeout: TCP, upgrade and handshake (default 10 s, as tailscaled). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

const MAX_RESPONSE_HEAD = 16 * 1024;

interface Target {
  host: string;
  port: number;
  tls: boolean;
  hostHeader: string;
}

function parseTarget(rawUrl: string): Target {
  let u: URL;
  try {
    u = new URL(rawUrl);
  } catch {
    throw new ProtocolError('upgrade_failed', `invalid control URL ${JSON.stringify(rawUrl)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new ProtocolError('upgrade_failed', `control URL must be http or https, got ${u.protocol}`);
  const secure = u.protocol === 'https:';
  const port = u.port ? Number(u.port) : secure ? 443 : 80;
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return { host, port, tls: secure, hostHeader: u.host };
}

function connectSocket(t: Target): Duplex & { setNoDelay?(v: boolean): unknown } {
  if (t.tls) {
    // The Noise layer authenticates the server; TLS is only a tunnel. ALPN is disabled so TLS
    // carries HTTP/1.1, which can switch protocols.
    return tls.connect({
      host: t.host,
      port: t.port,
      servername: net.isIP(t.host) ? undefined : t.host,
      rejectUnauthorized: false,
      ALPNProtocols: [],
    });
  }
  return net.connect({ host: t.host, port: t.port });
}

interface ParsedHead {
  status: number;
  statusText: string;
  headers: Map<string, string>;
}

function parseResponseHead(text: string): ParsedHead {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0] ?? '');
  if (!m)
    throw new ProtocolError('upgrade_failed', `malformed HTTP status line ${JSON.stringify(lines[0] ?? '')}`);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const name = line.slice(0, i).trim().toLowerCase();
    const value = line.slice(i + 1).trim();
    headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value);
  }
  return { status: Number(m[1]), statusText: m[2] ?? '', headers };
}

/** Best-effort decoding of a chunked body prefix, for error messages only. */
function dechunk(buf: Buffer): Buffer {
  const parts: Buffer[] = [];
  let off = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', off);
    if (eol < 0) break;
    const size = parseInt(buf.subarray(off, eol).toString('latin1'), 16);
    if (!Number.isFinite(size) || size <= 0) break;
    parts.push(buf.subarray(eol + 2, Math.min(buf.length, eol + 2 + size)));
    off = eol + 2 + size + 2;
    if (off >= buf.length) break;
  }
  return Buffer.concat(parts);
}

/** Performs the upgrade and Noise handshake; resolves with a NoiseConn (early payload detection on). */
export function dialNoise(opts: DialNoiseOptions): Promise<NoiseConn> {
  const target = parseTarget(opts.url);
  const version = opts.capVersion ?? CURRENT_CAPVER;
  const hs = initiate(opts.machinePrivate, opts.serverPublic, version);
  const request =
    `POST ${TS2021_PATH} HTTP/1.1\r\n` +
    `Host: ${target.hostHeader}\r\n` +
    'User-Agent: switchboard-protocol\r\n' +
    `Upgrade: ${UPGRADE_PROTOCOL}\r\n` +
    'Connection: upgrade\r\n' +
    `${HANDSHAKE_HEADER}: ${Buffer.from(hs.initiation).toString('base64')}\r\n` +
    'Content-Length: 0\r\n\r\n';

  return new Promise<NoiseConn>((resolve, reject) => {
    const socket = connectSocket(target);
    let buf: Buffer = Buffer.alloc(0);
    let head: ParsedHead | undefined;
    let wantExcerpt = 200;
    let settled = false;
    const timeoutMs = opts.timeoutMs ?? 10_000;

    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('end', onEnd);
      opts.signal?.removeEventListener('abort', onAbort);
    };
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      cleanup();
      socket.on('error', () => undefined);
      socket.destroy();
      reject(err);
    };
    const onError = (err: Error): void =>
      fail(
        err instanceof ProtocolError
          ? err
          : new ProtocolError('upgrade_failed', `dial ${opts.url}: ${err.message}`),
      );
    const onEnd = (): void => {
      if (head && head.status !== 101) return finishNon101();
      if (head)
        return fail(
          new ProtocolError(
            'noise_handshake_failed',
            'server closed the connection after the 101 without a Noise response',
            'the server could not decrypt the handshake: is serverPublic the key from its /key endpoint?',
          ),
        );
      fail(new ProtocolError('upgrade_failed', 'connection closed during the ts2021 upgrade'));
    };
    const onAbort = (): void => fail(new ProtocolError('timeout', 'dial aborted'));
    const timer = setTimeout(
      () => fail(new ProtocolError('timeout', `dial ${opts.url} timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );

    const finishNon101 = (): void => {
      const h = head!;
      const chunked = /chunked/i.test(h.headers.get('transfer-encoding') ?? '');
      const excerpt = (chunked ? dechunk(buf) : buf).subarray(0, 200).toString('utf8').trim();
      fail(
        new ProtocolError(
          'upgrade_failed',
          `unexpected HTTP response: ${h.status} ${h.statusText}${excerpt ? `: ${excerpt}` : ''}`,
          undefined,
          { status: h.status },
        ),
      );
    };

    const onData = (chunk: Buffer): void => {
      if (settled) return;
      try {
        buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
        if (!head) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) {
            if (buf.length > MAX_RESPONSE_HEAD)
              throw new ProtocolError('upgrade_failed', 'HTTP response headers too long');
            return;
          }
          head = parseResponseHead(buf.subarray(0, end).toString('latin1'));
          buf = buf.subarray(end + 4);
          if (head.status === 101) {
            const upgrade = head.headers.get('upgrade') ?? '';
            if (upgrade !== UPGRADE_PROTOCOL)
              throw new ProtocolError(
                'upgrade_failed',
                `server switched to unexpected protocol ${JSON.stringify(upgrade)}`,
              );
            const connection = (head.headers.get('connection') ?? '').toLowerCase().split(',');
            if (!connection.some((t) => t.trim() === 'upgrade'))
              throw new ProtocolError('upgrade_failed', '101 response lacks "Connection: upgrade"');
          } else {
            const cl = Number(head.headers.get('content-length') ?? NaN);
            wantExcerpt = Number.isFinite(cl) ? Math.min(cl, 200) : 200;
          }
        }
        if (head.status !== 101) {
          // Collect up to 200 bytes of the body for the error message (or until the server closes).
          const chunkedDone =
            /chunked/i.test(head.headers.get('transfer-encoding') ?? '') && buf.includes('0\r\n\r\n');
          if (buf.length >= wantExcerpt || chunkedDone) finishNon101();
          return;
        }
        const reply = readHandshakeReply(buf);
        if (reply.kind === 'incomplete') return;
        if (reply.kind === 'error')
          throw new ProtocolError('noise_server_error', `server error: ${JSON.stringify(reply.text)}`);
        const session = hs.finish(reply.message);
        settled = true;
        cleanup();
        socket.pause();
        socket.setNoDelay?.(true);
        resolve(new NoiseConn({ socket, session, head: reply.rest, detectEarlyPayload: true }));
      } catch (err) {
        fail(err instanceof Error ? err : new Error(String(err)));
      }
    };

    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener('abort', onAbort);
    socket.on('error', onError);
    socket.on('end', onEnd);
    socket.on('data', onData);
    socket.write(request);
  });
}

export interface DialControlOptions extends DialNoiseOptions {
  /** Passed to http2.connect (per-connection memory, in MB; default 10). */
  maxSessionMemory?: number;
}

/** An HTTP/2 session over an authenticated Noise connection. */
export interface ControlConnection {
  readonly conn: NoiseConn;
  readonly session: ClientHttp2Session;
  /** The server's early payload, or null if it sent none. */
  readonly earlyNoise: EarlyNoise | null;
}

/**
 * dialNoise plus prior-knowledge HTTP/2 (the client is the h2 client). Resolves once the server's
 * first bytes arrived and the early payload, if any, was read.
 */
export async function dialControl(opts: DialControlOptions): Promise<ControlConnection> {
  const conn = await dialNoise(opts);
  return openControlSession(conn, {
    authority: parseTarget(opts.url).hostHeader,
    timeoutMs: opts.timeoutMs,
    maxSessionMemory: opts.maxSessionMemory,
  });
}

export interface ControlSessionOptions {
  /** `:authority` of requests (default "unused"; servers must ignore it). */
  authority?: string;
  /** How long to wait for the server's first bytes (default 10 s). */
  timeoutMs?: number;
  /** Passed to http2.connect (MB; default 10). */
  maxSessionMemory?: number;
}

/**
 * Starts the HTTP/2 client on an established client-side NoiseConn (one made with
 * detectEarlyPayload, as dialNoise does) and waits for the server's first bytes.
 */
export async function openControlSession(
  conn: NoiseConn,
  opts: ControlSessionOptions = {},
): Promise<ControlConnection> {
  // node:http2 must only ever be let go of its transport by the session itself (see NoiseConn).
  conn.asHttp2Transport((reason) => {
    // The session first (its native handle then writes nothing more), then the Duplex under it.
    if (!session.destroyed) session.destroy(reason);
    conn.destroy();
  });
  const session = http2.connect(`https://${opts.authority ?? 'unused'}`, {
    createConnection: () => conn,
    maxSessionMemory: opts.maxSessionMemory ?? 10,
    settings: { enablePush: false },
  });
  const sessionError = new Promise<never>((_, reject) => {
    session.once('error', (err: Error) => reject(err));
    session.once('close', () =>
      reject(new ProtocolError('noise_closed', 'HTTP/2 session closed during setup')),
    );
  });
  sessionError.catch(() => undefined);
  session.on('error', () => undefined); // later errors surface on requests
  const timeoutMs = opts.timeoutMs ?? 10_000;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ProtocolError('timeout', 'no HTTP/2 data from server')), timeoutMs);
  });
  try {
    const earlyNoise = await Promise.race([conn.earlyPayload, sessionError, timeout]);
    return { conn, session, earlyNoise };
  } catch (err) {
    session.destroy();
    conn.destroy();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
