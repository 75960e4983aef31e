/**
 * The relay's mesh: one DERP client per other replica's relay, authenticated with the shared mesh
 * key, sending WatchConns. Each PeerPresent makes that link the forwarder for the key; PeerGone or
 * the link's loss removes it (MeshConnBroke), so a dead replica's clients stop being routed there
 * at once, and the link is redialled with backoff. Peers come from DERP_MESH_WITH and from the
 * replicas' relay announcements on the bus (`setPeers`).
 */
import type { Logger } from '@switchboard/common';
import { PeerPresentFlags, type BoxKey } from '@switchboard/derp';
import { DerpClient } from './derp-client.js';
import type { DerpRelay, PacketForwarder } from './derp-relay.js';

export interface MeshLinksOptions {
  relay: DerpRelay;
  key: BoxKey;
  meshKey: string;
  logger: Logger;
}

class MeshLink implements PacketForwarder {
  client: DerpClient | undefined;
  private stopped = false;
  private backoff = 250;
  private timer: NodeJS.Timeout | undefined;
  up = false;

  constructor(
    readonly url: string,
    private readonly o: MeshLinksOptions,
  ) {}

  forward(src: Buffer, dst: Buffer, packet: Buffer): boolean {
    const c = this.client;
    if (!c || !this.up) return false;
    // A mesh link that cannot keep up drops like a client queue does.
    if (c.pendingBytes > 8 << 20) return false;
    return c.forward(src, dst, packet);
  }

  start(): void {
    void this.dial();
  }

  private async dial(): Promise<void> {
    if (this.stopped) return;
    const c = new DerpClient({
      url: this.url,
      key: this.o.key,
      meshKey: this.o.meshKey,
      insecure: true, // our replicas' relays; the mesh key authenticates both ends' intent
      onFrame: (f) => {
        // Other replicas' mesh clients are not destinations (derp PeerPresentIsMeshPeer).
        if (f.type === 'peer-present' && ((f.flags ?? 0) & PeerPresentFlags.IsMeshPeer) === 0)
          this.o.relay.setForwarder(f.peer.toString('hex'), this);
        else if (f.type === 'peer-gone') this.o.relay.setForwarder(f.peer.toString('hex'), undefined);
      },
      onClose: () => this.lost('mesh connection closed'),
    });
    this.client = c;
    try {
      await c.connect();
    } catch (err) {
      this.lost(String((err as Error).message ?? err));
      return;
    }
    if (c.serverKey.equals(this.o.key.publicKey)) {
      // This is our own relay (our URL is in the list): nothing to watch.
      this.stopped = true;
      c.close();
      return;
    }
    this.up = true;
    this.backoff = 250;
    c.watchConns();
    this.o.logger.info('mesh link up', { peer: this.url });
  }

  private lost(why: string): void {
    const wasUp = this.up;
    this.up = false;
    this.o.relay.dropForwarder(this);
    if (this.stopped) return;
    if (wasUp)
      this.o.logger.warn('mesh link to another replica lost; its clients are unreachable until it is back', {
        peer: this.url,
        reason: why,
      });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.dial(), this.backoff);
    this.timer.unref();
    this.backoff = Math.min(this.backoff * 2, 5000);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.client?.close();
    this.o.relay.dropForwarder(this);
  }
}

export class MeshLinks {
  private readonly links = new Map<string, MeshLink>();

  constructor(private readonly o: MeshLinksOptions) {}

  /** Makes the set of peer relay URLs exactly `urls` (our own URL may be among them). */
  setPeers(urls: Iterable<string>): void {
    if (!this.o.meshKey) return;
    const want = new Set(urls);
    for (const [u, l] of this.links)
      if (!want.has(u)) {
        l.stop();
        this.links.delete(u);
      }
    for (const u of want)
      if (!this.links.has(u)) {
        const l = new MeshLink(u, this.o);
        this.links.set(u, l);
        l.start();
      }
  }

  /** Peers whose link is up. */
  get upCount(): number {
    let n = 0;
    for (const l of this.links.values()) if (l.up) n++;
    return n;
  }

  stop(): void {
    for (const l of this.links.values()) l.stop();
    this.links.clear();
  }
}
