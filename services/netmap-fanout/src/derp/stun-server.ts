/**
 * STUN on UDP for netcheck: tailscale binding requests are answered with the source address as
 * XOR-MAPPED-ADDRESS from the socket that received them; anything else is dropped silently.
 * Bound on dual-stack `udp6` when the host is `::` or `0.0.0.0` is asked for, else its family.
 */
import { createSocket, type Socket } from 'node:dgram';
import type { Logger } from '@switchboard/common';
import { bindingResponse, parseBindingRequest } from '@switchboard/derp';

export class StunServer {
  private sock: Socket | undefined;
  stats = { requests: 0, ignored: 0 };
  boundPort = 0;

  constructor(private readonly o: { host: string; port: number; logger: Logger }) {}

  async start(): Promise<void> {
    const v6 = this.o.host.includes(':') || this.o.host === '0.0.0.0' || this.o.host === '';
    const sock = createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: false });
    sock.on('message', (msg, rinfo) => {
      const tx = parseBindingRequest(msg);
      if (!tx) {
        this.stats.ignored++;
        return;
      }
      this.stats.requests++;
      try {
        sock.send(bindingResponse(tx, rinfo.address, rinfo.port), rinfo.port, rinfo.address);
      } catch (err) {
        this.o.logger.debug('could not answer a STUN request', { err, from: rinfo.address });
      }
    });
    sock.on('error', (err) => this.o.logger.warn('STUN socket error', { err }));
    const host = v6 && (this.o.host === '0.0.0.0' || this.o.host === '') ? '::' : this.o.host;
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(this.o.port, host, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    this.boundPort = sock.address().port;
    this.sock = sock;
  }

  async stop(): Promise<void> {
    const s = this.sock;
    this.sock = undefined;
    if (s) await new Promise<void>((r) => s.close(() => r()));
  }

  metricsText(): string {
    return [
      `switchboard_stun_requests_total ${this.stats.requests}`,
      `switchboard_stun_ignored_total ${this.stats.ignored}`,
    ].join('\n');
  }
}
