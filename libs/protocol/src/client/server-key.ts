/**
 * GET /key?v=<capver>: the server's Noise public key, fetched like tailscaled does before
 * dialling /ts2021 (response body read up to 64 KiB; any status but 200 is an error).
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { CURRENT_CAPVER } from '../capver.js';
import { ControlHttpError, ProtocolError } from '../errors.js';
import { isZeroKey, parseKey, type MachinePublic } from '../keys.js';

export interface ServerKeys {
  /** The Noise key (`publicKey`). Never zero: a zero key is refused like tailscaled does. */
  readonly publicKey: MachinePublic;
  /** The legacy NaCl key, if the server sent a non-zero one. */
  readonly legacyPublicKey?: MachinePublic;
}

const MAX_KEY_BODY = 64 * 1024;

/** Fetches and validates the server's keys from `<url>/key?v=<capVersion>` (any URL path prefix is kept). */
export function fetchServerKey(
  url: string,
  opts: { capVersion?: number; timeoutMs?: number; insecureTls?: boolean } = {},
): Promise<ServerKeys> {
  const base = url.replace(/\/+$/, '');
  const target = new URL(`${base}/key?v=${opts.capVersion ?? CURRENT_CAPVER}`);
  const mod = target.protocol === 'https:' ? https : http;
  return new Promise<ServerKeys>((resolve, reject) => {
    const req = mod.get(
      target,
      { timeout: opts.timeoutMs ?? 10_000, ...(opts.insecureTls ? { rejectUnauthorized: false } : {}) },
      (res) => {
        const parts: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          if (size < MAX_KEY_BODY) parts.push(c.subarray(0, MAX_KEY_BODY - size));
          size += c.length;
        });
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(parts).toString('utf8');
          if (res.statusCode !== 200) {
            reject(new ControlHttpError(res.statusCode ?? 0, '/key', body.slice(0, 200)));
            return;
          }
          try {
            resolve(parseServerKeyResponse(body));
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new ProtocolError('timeout', `GET ${target.href} timed out`)));
    req.on('error', reject);
  });
}

/** Parses an OverTLSPublicKeyResponse body (`{"legacyPublicKey":"mkey:…","publicKey":"mkey:…"}`). */
export function parseServerKeyResponse(body: string): ServerKeys {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    throw new ProtocolError(
      'control_http_error',
      '/key: response is not JSON (pre-JSON legacy servers are not supported)',
    );
  }
  if (typeof value !== 'object' || value === null)
    throw new ProtocolError('control_http_error', '/key: expected a JSON object');
  const o = value as { publicKey?: unknown; legacyPublicKey?: unknown };
  if (o.publicKey === undefined || o.publicKey === null)
    throw new ProtocolError('control_http_error', 'control server is too old; no noise key');
  const publicKey = parseKey('machine', o.publicKey, 'publicKey');
  if (isZeroKey(publicKey))
    throw new ProtocolError('control_http_error', 'control server is too old; no noise key');
  const legacy =
    o.legacyPublicKey === undefined || o.legacyPublicKey === null
      ? undefined
      : parseKey('machine', o.legacyPublicKey, 'legacyPublicKey');
  return legacy && !isZeroKey(legacy) ? { publicKey, legacyPublicKey: legacy } : { publicKey };
}
