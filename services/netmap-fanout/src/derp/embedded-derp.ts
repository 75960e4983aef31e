/**
 * The relay, STUN server and default DERP map of one fanout replica. Admission reads the fanout's
 * own event-fed read model (the node key must belong to a node that is authorized and unexpired);
 * every model change that ends a node's right to relay (deleted, expired, rekeyed, deauthorized)
 * closes its relay connections in the same tick.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Bus, Subscription } from '@switchboard/bus';
import type { Logger } from '@switchboard/common';
import { fanout, publishBroadcast, subscribeBroadcast } from '@switchboard/contracts';
import type { NodeRecord } from '@switchboard/contracts';
import { BoxKey } from '@switchboard/derp';
import type { DERPMap } from '@switchboard/protocol';
import { isExpired, type MapSettings } from '../map-builder.js';
import type { FanoutConfig } from '../netmap-fanout.config.js';
import type { ModelChange, ReadModelReader } from '../read-model.js';
import { DerpRelay } from './derp-relay.js';
import { loadRelayTls, selfDerpMap, type RelayTls } from './derp-tls.js';
import { MeshLinks } from './mesh-links.js';
import { StunServer } from './stun-server.js';

export interface EmbeddedDerpOptions {
  config: FanoutConfig;
  model: ReadModelReader;
  /** The map settings the engine renders from; `derpMapFor` is set once the port is known. */
  settings: MapSettings;
  logger: Logger;
  host: string;
  dataDir: string;
  advertiseHost: string | undefined;
}

export class EmbeddedDerp {
  readonly relay: DerpRelay;
  readonly key = new BoxKey(randomBytes(32));
  private stun: StunServer | undefined;
  private tls: RelayTls | undefined;
  readonly mesh: MeshLinks;
  readonly upgradeHandler: (req: IncomingMessage, socket: Duplex, head: Buffer) => boolean;
  derpPort = 0;

  constructor(private readonly o: EmbeddedDerpOptions) {
    this.relay = new DerpRelay({
      key: this.key,
      logger: o.logger,
      admit: (nodeKey) => this.live(o.model.nodeByKey(nodeKey)),
      meshKey: o.config.DERP_MESH_KEY ?? '',
      queueBytes: o.config.DERP_QUEUE_BYTES,
    });
    this.upgradeHandler = (req, socket, head) => this.relay.handleUpgrade(req, socket, head);
    this.mesh = new MeshLinks({
      relay: this.relay,
      key: this.key,
      meshKey: o.config.DERP_MESH_KEY ?? '',
      logger: o.logger.child('mesh'),
    });
  }

  get hostName(): string {
    return this.o.config.DERP_HOSTNAME ?? this.o.advertiseHost ?? '127.0.0.1';
  }

  private live(n: NodeRecord | undefined): boolean {
    return n !== undefined && n.machineAuthorized && !isExpired(n, Date.now());
  }

  async loadTls(): Promise<RelayTls> {
    this.tls = await loadRelayTls({
      certFile: this.o.config.DERP_TLS_CERT_FILE,
      keyFile: this.o.config.DERP_TLS_KEY_FILE,
      dir: this.o.dataDir,
      hostName: this.hostName,
      logger: this.o.logger,
    });
    return this.tls;
  }

  /** Starts STUN and publishes the map (our region, merged into a configured map if asked). */
  async start(derpPort: number): Promise<void> {
    this.derpPort = derpPort;
    const cfg = this.o.config;
    let stunPort = -1;
    if (cfg.STUN_PORT >= 0) {
      const stun = new StunServer({
        host: this.o.host,
        port: cfg.STUN_PORT,
        logger: this.o.logger.child('stun'),
      });
      try {
        await stun.start();
        this.stun = stun;
        stunPort = stun.boundPort;
      } catch (err) {
        // Another process holds the port (a second replica on one host): relay without STUN.
        this.o.logger.error('could not bind the STUN port; serving the DERP relay without STUN', {
          err,
          port: cfg.STUN_PORT,
          hint: 'set STUN_PORT to a free UDP port (0 = any) or -1 to disable STUN',
        });
      }
    }
    const tls = this.tls ?? (await this.loadTls());
    const base = this.o.settings.derpMap;
    const cache = new Map<boolean, DERPMap>();
    this.o.settings.derpMapFor = (capVersion) => {
      const pinned = capVersion >= 115;
      let m = cache.get(pinned);
      if (!m) {
        const own = selfDerpMap({
          hostName: this.hostName,
          derpPort,
          stunPort,
          tls,
          capVersion,
          regionId: cfg.DERP_REGION_ID,
        });
        m = cfg.DERP_SELF_REGION === 'true' ? { ...base, Regions: { ...base.Regions, ...own.Regions } } : own;
        cache.set(pinned, m);
      }
      return m;
    };
    // Expiry passes without an event: re-check connected clients every few seconds.
    const t = setInterval(() => this.relay.recheckAll(), 2_000);
    t.unref();
    this.timers.push(t);
    this.o.logger.info('embedded DERP relay ready', {
      hostName: this.hostName,
      derpPort,
      stunPort,
      regionId: cfg.DERP_REGION_ID,
      certificate: tls.pinnedSha256 ? `self-signed, sha256 ${tls.pinnedSha256}` : 'operator-provided',
      relayKey: `nodekey:${this.relay.publicKeyHex}`,
    });
  }

  /** The relay URL other replicas' mesh clients dial. */
  get url(): string {
    const h = this.hostName.includes(':') ? `[${this.hostName}]` : this.hostName;
    return `https://${h}:${this.derpPort}/derp`;
  }

  onModelChanges(changes: ModelChange[]): void {
    for (const c of changes) {
      if (c.kind !== 'node' || !c.before) continue;
      const after = c.after;
      if (!after || after.nodeKey !== c.before.nodeKey || !this.live(after))
        this.relay.revoke(c.before.nodeKey);
    }
  }

  /** Mesh peers: DERP_MESH_WITH plus the relays other replicas announce (forgotten after 15 s). */
  private readonly announced = new Map<string, { url: string; at: number }>();
  private timers: NodeJS.Timeout[] = [];

  startMesh(bus: Bus, replicaId: string): Subscription | undefined {
    const key = this.o.config.DERP_MESH_KEY;
    if (!key) return undefined;
    const fixed = (this.o.config.DERP_MESH_WITH ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const refresh = (): void => {
      const now = Date.now();
      for (const [id, a] of this.announced) if (now - a.at > 15_000) this.announced.delete(id);
      this.mesh.setPeers([...fixed, ...[...this.announced.values()].map((a) => a.url)]);
    };
    const sub = subscribeBroadcast(
      bus,
      fanout.DerpRelayAnnounced,
      (m) => {
        if (m.replicaId === replicaId) return;
        const isNew = !this.announced.has(m.replicaId);
        this.announced.set(m.replicaId, { url: m.url, at: Date.now() });
        if (isNew) refresh();
      },
      (err) => this.o.logger.warn('ignored a malformed DERP relay announcement', { err }),
    );
    const announce = (): void =>
      publishBroadcast(bus, fanout.DerpRelayAnnounced, {
        replicaId,
        url: this.url,
        relayKey: `nodekey:${this.relay.publicKeyHex}`,
      });
    announce();
    refresh();
    this.timers.push(
      setInterval(() => {
        announce();
        refresh();
      }, 5_000),
    );
    for (const t of this.timers) t.unref();
    return sub;
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.mesh.stop();
    this.relay.close();
    await this.stun?.stop();
  }

  metricsText(): string {
    return [this.relay.metricsText(), ...(this.stun ? [this.stun.metricsText()] : [])].join('\n');
  }
}
