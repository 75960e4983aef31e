/**
 * Server side of the /ts2021 upgrade, for Node's http server 'upgrade' event. Checks the request
 * as Tailscale's controlhttpserver does (Upgrade compared case-insensitively, base64
 * X-Tailscale-Handshake), answers 101 with `Upgrade: tailscale-control-protocol` and
 * `Connection: upgrade`, then the 51-byte Noise response and an optional early payload in one TCP
 * write, and hands the NoiseConn to a callback. Bad requests get HTTP 400 with a one-line reason;
 * nothing here throws into the event loop.
 *
 * WebSocket upgrades (`Upgrade: websocket`, used only by browser/WASM clients) are answered 501.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { createLogger, type Logger } from '@switchboard/common';
import { encodeEarlyPayload } from './early-payload.js';
import {
  formatKey,
  generatePrivateKey,
  publicKeyFromPrivate,
  type MachinePublic,
  type PrivateKey,
} from './keys.js';
import { HandshakeRejection, acceptInitiation, parseInitiationHeader } from './noise/handshake.js';
import { encodeErrorFrame } from './noise/messages.js';
import { NoiseConn } from './noise/noise-conn.js';
import type { EarlyNoise } from './tailcfg.js';

export const TS2021_PATH = '/ts2021';
export const UPGRADE_PROTOCOL = 'tailscale-control-protocol';
export const HANDSHAKE_HEADER = 'X-Tailscale-Handshake';

/** What the server knows about a connection once the handshake succeeded. */
export interface Ts2021ConnectionInfo {
  readonly machineKey: MachinePublic;
  readonly version: number;
  readonly remoteAddress: string | undefined;
  /** The challenge private key, when an early payload with a node-key challenge was sent. */
  readonly challengePrivate?: PrivateKey;
}

export interface Ts2021ServerOptions {
  /** The server's long-term Noise key (published as `publicKey` by GET /key). */
  serverPrivate: PrivateKey;
  /** Receives every established connection; serve HTTP/2 on it (see NoiseHttp2Server). */
  onConnection: (conn: NoiseConn, info: Ts2021ConnectionInfo) => void;
  /**
   * Clients announcing a lower capability version are refused with a Noise error frame naming
   * both versions (default 0: accept all).
   */
  minCapVersion?: number;
  /** Send an early payload with a fresh per-connection node-key challenge (default false). */
  earlyPayload?: boolean;
  logger?: Logger;
}

const RESPONSE_101 = Buffer.from(
  `HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${UPGRADE_PROTOCOL}\r\nConnection: upgrade\r\n\r\n`,
  'latin1',
);

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  405: 'Method Not Allowed',
  501: 'Not Implemented',
};

/** Standard base64 with padding, as Go's base64.StdEncoding accepts it. */
const BASE64_STD = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The request path without query string. */
function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '';
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/** True if an HTTP request targets the ts2021 upgrade endpoint. */
export function isTs2021Request(req: IncomingMessage): boolean {
  return pathOf(req) === TS2021_PATH;
}

function headerValue(req: IncomingMessage, name: string): string {
  const v = req.headers[name.toLowerCase()];
  if (Array.isArray(v)) return v[0] ?? '';
  return v ?? '';
}

function writeHttpError(socket: Duplex, status: number, reason: string): void {
  const body = Buffer.from(reason + '\n', 'utf8');
  const head =
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\n` +
    'Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n' +
    `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
  if (!socket.destroyed && socket.writable) socket.end(Buffer.concat([Buffer.from(head, 'latin1'), body]));
  // Do not wait forever for a peer that never reads.
  setTimeout(() => socket.destroy(), 5000).unref();
}

/** Why a ts2021 request was refused before any Noise processing, or null if it is acceptable. */
function checkRequest(req: IncomingMessage): { status: number; reason: string } | null {
  const next = headerValue(req, 'upgrade').toLowerCase();
  if (next === '') return { status: 400, reason: 'missing next protocol' };
  if (next === 'websocket')
    return { status: 501, reason: 'websocket transport for /ts2021 is not supported by this server' };
  if (next !== UPGRADE_PROTOCOL) return { status: 400, reason: 'unknown next protocol' };
  if (req.method !== 'POST' && req.method !== 'GET') return { status: 405, reason: 'method not allowed' };
  const init = headerValue(req, HANDSHAKE_HEADER);
  if (init === '') return { status: 400, reason: 'missing Tailscale handshake header' };
  if (!BASE64_STD.test(init)) return { status: 400, reason: 'invalid tailscale handshake header' };
  return null;
}

/**
 * Answers a plain (non-upgrade) HTTP request to /ts2021 the way the reference server does: 400
 * with a reason. Use it in the http server's 'request' handler.
 */
export function rejectPlainTs2021Request(req: IncomingMessage, res: ServerResponse): void {
  const problem = checkRequest(req) ?? { status: 400, reason: 'missing "Connection: upgrade" header' };
  res.writeHead(problem.status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'X-Content-Type-Options': 'nosniff',
  });
  res.end(problem.reason + '\n');
}

/**
 * Returns a listener for `http.Server`'s 'upgrade' event. It returns true when it took the socket
 * (any /ts2021 request, accepted or refused) and false for other paths, which it leaves alone.
 */
export function createTs2021UpgradeHandler(
  opts: Ts2021ServerOptions,
): (req: IncomingMessage, socket: Duplex, head: Buffer) => boolean {
  const log = opts.logger ?? createLogger('protocol.ts2021');
  const minCapVersion = opts.minCapVersion ?? 0;
  const serverPrivate = opts.serverPrivate;
  publicKeyFromPrivate('machine', serverPrivate); // fail fast on a bad key, and warm the key cache

  return (req, socket, head) => {
    if (!isTs2021Request(req)) return false;
    const remoteAddress = (socket as { remoteAddress?: string }).remoteAddress;
    socket.on('error', (err) => log.debug('ts2021 socket error', { remoteAddress, err }));
    try {
      const problem = checkRequest(req);
      if (problem) {
        log.warn('refused ts2021 request', { remoteAddress, status: problem.status, reason: problem.reason });
        writeHttpError(socket, problem.status, problem.reason);
        return true;
      }
      acceptUpgrade(req, socket, head, remoteAddress);
    } catch (err) {
      log.error('ts2021 upgrade failed unexpectedly', { remoteAddress, err });
      socket.destroy();
    }
    return true;
  };

  function acceptUpgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    remoteAddress: string | undefined,
  ): void {
    const init = Buffer.from(headerValue(req, HANDSHAKE_HEADER), 'base64');
    (socket as { setNoDelay?: (v: boolean) => void }).setNoDelay?.(true);

    // Like controlhttpserver, the 101 goes out before the Noise message is looked at; Noise-level
    // refusals then travel as an error frame (type 3).
    const refuse = (text: string, fields: Record<string, unknown>): void => {
      log.warn('refused ts2021 handshake', { remoteAddress, reason: text, ...fields });
      socket.end(Buffer.concat([RESPONSE_101, encodeErrorFrame(text)]));
      setTimeout(() => socket.destroy(), 5000).unref();
    };

    let version: number;
    try {
      version = parseInitiationHeader(init).version;
    } catch (err) {
      if (err instanceof HandshakeRejection) {
        refuse(err.errorFrameText, {});
        return;
      }
      throw err;
    }
    if (version < minCapVersion) {
      refuse(
        `unsupported client: capability version ${version} is older than the minimum ${minCapVersion} this server accepts; upgrade Tailscale`,
        { version, minCapVersion },
      );
      return;
    }

    let accepted: ReturnType<typeof acceptInitiation>;
    try {
      accepted = acceptInitiation(init, serverPrivate);
    } catch (err) {
      // Cryptographic failure: the reference server has sent its 101 and just closes.
      log.warn('ts2021 noise handshake failed', { remoteAddress, version, err });
      socket.end(RESPONSE_101);
      setTimeout(() => socket.destroy(), 5000).unref();
      return;
    }

    let early: EarlyNoise | undefined;
    let challengePrivate: PrivateKey | undefined;
    if (opts.earlyPayload) {
      challengePrivate = generatePrivateKey();
      early = {
        nodeKeyChallenge: formatKey('challenge', publicKeyFromPrivate('challenge', challengePrivate)),
      };
    }

    // One TCP write: 101, Noise response, early payload (as corked by controlhttpserver).
    const sock = socket as Duplex & { cork?: () => void; uncork?: () => void };
    sock.cork?.();
    socket.write(Buffer.concat([RESPONSE_101, accepted.response]));
    const conn = new NoiseConn({ socket, session: accepted.session, head });
    if (early) conn.write(encodeEarlyPayload(early));
    sock.uncork?.();

    const info: Ts2021ConnectionInfo = {
      machineKey: accepted.machineKey,
      version,
      remoteAddress,
      ...(challengePrivate ? { challengePrivate } : {}),
    };
    log.debug('ts2021 connection established', {
      remoteAddress,
      version,
      machineKey: formatKey('machine', accepted.machineKey),
    });
    try {
      opts.onConnection(conn, info);
    } catch (err) {
      log.error('ts2021 onConnection handler threw', { remoteAddress, err });
      conn.destroy();
    }
  }
}
