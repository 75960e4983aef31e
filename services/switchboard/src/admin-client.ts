/** HTTP client for the admin API: over the local unix socket, or over TCP with an API key. */
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface AdminTarget {
  socketPath?: string;
  server?: string;
  apiKey?: string;
}

export class AdminApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

export function adminCall(t: AdminTarget, method: string, path: string, body?: unknown): Promise<unknown> {
  const data = body === undefined ? undefined : JSON.stringify(body);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (data !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(Buffer.byteLength(data));
  }
  if (t.apiKey) headers.authorization = `Bearer ${t.apiKey}`;
  return new Promise((resolve, reject) => {
    const onRes = (res: import('node:http').IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = text ? JSON.parse(text) : {};
        } catch {
          json = { error: { code: 'bad_response', message: text.slice(0, 200) } };
        }
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) return resolve(json);
        const e = (json as { error?: { code?: string; message?: string; hint?: string } }).error ?? {};
        reject(new AdminApiError(status, e.code ?? 'error', e.message ?? `HTTP ${status}`, e.hint));
      });
    };
    let req;
    if (t.server) {
      const u = new URL(path, t.server);
      req = (u.protocol === 'https:' ? httpsRequest : request)(u, { method, headers }, onRes);
    } else {
      req = request({ socketPath: t.socketPath, path, method, headers }, onRes);
    }
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED')
        reject(
          new AdminApiError(
            0,
            'unavailable',
            `cannot reach the admin API at ${t.server ?? t.socketPath}`,
            'is "switchboard serve" running? Use --socket PATH, or --server URL with --api-key',
          ),
        );
      else reject(err);
    });
    req.setTimeout(30_000, () => req.destroy(new Error('admin API request timed out after 30 s')));
    if (data !== undefined) req.write(data);
    req.end();
  });
}
