/**
 * A small JSON-over-HTTP call for the admin APIs the benchmark drives: Switchboard's over its unix
 * socket, headscale's REST API over loopback TCP with an API key. Any status outside 2xx throws with
 * the start of the body.
 */
import { request } from 'node:http';

export interface HttpTarget {
  /** Unix socket path, or… */
  readonly socketPath?: string;
  /** …a base URL such as http://127.0.0.1:8080. */
  readonly baseUrl?: string;
  readonly bearer?: string;
}

export function httpJson(t: HttpTarget, method: string, path: string, body?: unknown): Promise<unknown> {
  const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body), 'utf8');
  const headers: Record<string, string> = { accept: 'application/json' };
  if (data) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(data.length);
  }
  if (t.bearer) headers.authorization = `Bearer ${t.bearer}`;
  return new Promise((resolve, reject) => {
    const u = t.baseUrl ? new URL(path, t.baseUrl) : null;
    const opts = u
      ? { hostname: u.hostname, port: u.port, path: u.pathname + u.search, method, headers, timeout: 60_000 }
      : { socketPath: t.socketPath, path, method, headers, timeout: 60_000 };
    const req = request(opts, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        const status = res.statusCode ?? 0;
        if (status < 200 || status >= 300) {
          reject(new Error(`${method} ${path}: HTTP ${status}: ${text.slice(0, 300)}`));
          return;
        }
        try {
          resolve(text ? JSON.parse(text) : {});
        } catch {
          reject(new Error(`${method} ${path}: response is not JSON: ${text.slice(0, 200)}`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on('error', reject);
    if (data) req.end(data);
    else req.end();
  });
}
