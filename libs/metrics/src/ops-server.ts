/**
 * The small HTTP listener every Switchboard process can run for its operators (`METRICS_LISTEN`):
 *   GET /metrics   the process's metric set in the Prometheus text format
 *   GET /healthz   200 while the process runs (liveness: the event loop answers)
 *   GET /readyz    200 when every readiness check passes, else 503; the body names each check
 * A readiness check answers true, or false / a reason / a thrown error for "not ready"; each check
 * gets `checkTimeoutMs` (default 2 s) before it counts as failed, so a hung dependency cannot hang
 * the probe. Nothing here is reachable by clients: bind it to a cluster-internal address.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from '@switchboard/common';
import type { MetricSet } from './metrics.js';

/** Resolves true when ready; false or a string (the reason) when not. */
export type ReadinessCheck = () => Promise<boolean | string> | boolean | string;

export interface OpsServerOptions {
  /** host:port; port 0 picks a free one. */
  listen: string;
  metrics: MetricSet;
  checks: Record<string, ReadinessCheck>;
  logger: Logger;
  checkTimeoutMs?: number;
}

export interface ReadinessReport {
  ready: boolean;
  checks: Record<string, { ok: boolean; reason?: string }>;
}

export async function runChecks(
  checks: Record<string, ReadinessCheck>,
  timeoutMs = 2000,
): Promise<ReadinessReport> {
  const entries = await Promise.all(
    Object.entries(checks).map(async ([name, check]) => {
      let timer: NodeJS.Timeout | undefined;
      try {
        const r = await Promise.race([
          Promise.resolve().then(check),
          new Promise<string>((resolve) => {
            timer = setTimeout(() => resolve(`no answer within ${timeoutMs} ms`), timeoutMs);
          }),
        ]);
        if (r === true) return [name, { ok: true }] as const;
        return [name, { ok: false, reason: r === false ? 'not ready' : r }] as const;
      } catch (err) {
        return [name, { ok: false, reason: (err as Error).message }] as const;
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  const out: ReadinessReport['checks'] = {};
  for (const [name, r] of entries) out[name] = r;
  return { ready: entries.every(([, r]) => r.ok), checks: out };
}

export class OpsServer {
  private server: Server | undefined;
  private lastReady: boolean | undefined;
  port = 0;

  constructor(private readonly o: OpsServerOptions) {}

  async start(): Promise<void> {
    const { host, port } = splitHostPort(this.o.listen);
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.o.logger.error('ops endpoint failed', { err, url: req.url });
        if (!res.headersSent) res.writeHead(500).end();
        else res.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    const addr = server.address();
    if (addr && typeof addr === 'object') this.port = addr.port;
    this.server = server;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    switch (path) {
      case '/metrics': {
        const body = await this.o.metrics.text();
        res.writeHead(200, { 'content-type': this.o.metrics.contentType }).end(body);
        return;
      }
      case '/healthz':
      case '/livez':
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        return;
      case '/readyz': {
        const report = await runChecks(this.o.checks, this.o.checkTimeoutMs);
        if (report.ready !== this.lastReady) {
          if (this.lastReady !== undefined || !report.ready)
            this.o.logger[report.ready ? 'info' : 'warn'](report.ready ? 'ready' : 'not ready', {
              checks: report.checks,
            });
          this.lastReady = report.ready;
        }
        res
          .writeHead(report.ready ? 200 : 503, { 'content-type': 'application/json' })
          .end(JSON.stringify(report) + '\n');
        return;
      }
      default:
        res
          .writeHead(404, { 'content-type': 'text/plain' })
          .end('not found: try /metrics, /healthz, /readyz\n');
    }
  }
}

function splitHostPort(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  const host = i < 0 ? '0.0.0.0' : addr.slice(0, i).replace(/^\[|\]$/g, '') || '0.0.0.0';
  const port = Number(i < 0 ? addr : addr.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`METRICS_LISTEN: bad port in "${addr}" (host:port, e.g. 0.0.0.0:9100)`);
  return { host, port };
}
