/**
 * Assembles one netmap-fanout replica: read model + sync, fan-out engine, control handlers, the
 * client edge, and the cross-replica broadcasts (stream claims, presence).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { hostname } from 'node:os';
import type { Bus, Subscription } from '@switchboard/bus';
import type { Logger } from '@switchboard/common';
import { fanout, keyRegistry, subscribeBroadcast } from '@switchboard/contracts';
import { LoginWaiters } from './login-waiters.js';
import {
  KEEP_ALIVE_FRAME,
  formatKey,
  frameMapPayload,
  publicKeyFromPrivate,
  zstdCompress,
  type DERPMap,
  type PrivateKey,
} from '@switchboard/protocol';
import { ControlHandlers } from './control-handlers.js';
import { EdgeServer, MAX_BODY, type EdgeLegacyOptions } from './edge.server.js';
import { FanoutEngine } from './fanout-engine.js';
import { LegacyChannel } from './legacy.handler.js';
import type { FanoutConfig } from './netmap-fanout.config.js';
import { PolicyState } from './policy-state.js';
import { ReadModel, type ReadModelReader } from './read-model.js';
import type { StreamRegistry } from './stream-registry.js';
import { ModelSync } from './sync.js';
import { ViewIngress } from './view-ingress.js';

export interface FanoutRuntimeOptions {
  bus: Bus;
  logger: Logger;
  config: FanoutConfig;
  registry: StreamRegistry;
  serverPrivate: PrivateKey;
  /** The legacy NaCl key; required when `config.LEGACY_PROTOCOL` is on. */
  legacyPrivate?: PrivateKey;
  derpMap: DERPMap;
  host: string;
  port: number;
  /** More plain-HTTP routes on the client port (the admin API v2 in one-process mode); true when handled. */
  httpRoutes?: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
}

export class NetmapFanoutRuntime {
  /** Written only by `ingress`. */
  private readonly store = new ReadModel();
  readonly model: ReadModelReader = this.store;
  readonly engine: FanoutEngine;
  readonly sync: ModelSync;
  /** The one way changes enter the read model (log, direct fetches, presence). */
  readonly ingress: ViewIngress;
  readonly edge: EdgeServer;
  readonly replicaId: string;
  readonly policy: PolicyState;
  private readonly handlers: ControlHandlers;
  private subs: Subscription[] = [];
  readonly logins = new LoginWaiters();

  constructor(private readonly o: FanoutRuntimeOptions) {
    this.replicaId =
      o.config.REPLICA_ID ?? `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
    const log = o.logger;
    this.policy = new PolicyState(this.model, log.child('policy'));
    this.engine = new FanoutEngine({
      model: this.model,
      settings: {
        derpMap: o.derpMap,
        magicDns: o.config.MAGIC_DNS,
        nameservers: o.config.DNS_NAMESERVERS,
        disableCaptivePortalDetection: o.config.DISABLE_CAPTIVE_PORTAL_DETECTION,
      },
      policy: this.policy,
      encoder: {
        compress: (text) => {
          const z = zstdCompress(Buffer.from(text, 'utf8'));
          return Buffer.from(z.buffer, z.byteOffset, z.byteLength);
        },
        frame: frameMapPayload,
        keepAlive: Buffer.from(KEEP_ALIVE_FRAME),
      },
      logger: log.child('engine'),
      keepAliveMs: o.config.KEEPALIVE_INTERVAL_MS,
    });
    this.ingress = new ViewIngress(this.store, this.policy, this.engine, log.child('ingress'));
    this.sync = new ModelSync(o.bus, this.ingress, log.child('sync'));
    this.handlers = new ControlHandlers({
      bus: o.bus,
      model: this.model,
      engine: this.engine,
      ingress: this.ingress,
      registry: o.registry,
      replicaId: this.replicaId,
      logger: log.child('control'),
      logins: this.logins,
    });
    this.edge = new EdgeServer({
      legacy: this.legacyOptions(),
      host: o.host,
      port: o.port,
      serverPrivate: o.serverPrivate,
      handlers: this.handlers,
      logger: log.child('edge'),
      minCapVersion: o.config.MIN_CAPABILITY_VERSION,
      limits: {
        maxConnections: o.config.EDGE_MAX_CONNECTIONS,
        maxConnectionsPerSource: o.config.EDGE_MAX_CONNECTIONS_PER_SOURCE,
        prefaceTimeoutMs: o.config.EDGE_PREFACE_TIMEOUT_MS,
        idleTimeoutMs: o.config.EDGE_IDLE_TIMEOUT_MS,
        bodyTimeoutMs: o.config.EDGE_BODY_TIMEOUT_MS,
        maxStreamsPerConnection: o.config.EDGE_MAX_STREAMS_PER_CONNECTION,
        maxRequestsPerConnection: o.config.EDGE_MAX_REQUESTS_PER_CONNECTION,
      },
      extraRoutes: (req, res) => {
        if (req.url === '/ready') {
          const ok = this.sync.ready;
          res
            .writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' })
            .end(ok ? 'ready\n' : 'loading read model\n');
          return true;
        }
        if (req.url === '/metrics') {
          res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(this.metrics());
          return true;
        }
        return o.httpRoutes?.(req, res) ?? false;
      },
    });
  }

  private legacyOptions(): EdgeLegacyOptions | undefined {
    const c = this.o.config;
    if (!c.LEGACY_PROTOCOL) return undefined;
    const key = this.o.legacyPrivate;
    if (!key) throw new Error('LEGACY_PROTOCOL is on but no legacy key was loaded');
    return {
      keyText: formatKey('machine', publicKeyFromPrivate('machine', key)),
      legacyOnlyMaxCapVersion: c.LEGACY_ONLY_MAX_CAPABILITY_VERSION,
      channel: new LegacyChannel({
        legacyPrivate: key,
        handlers: this.handlers,
        logger: this.o.logger.child('legacy'),
        minCapVersion: c.LEGACY_MIN_CAPABILITY_VERSION,
        maxBody: MAX_BODY,
        bodyTimeoutMs: c.EDGE_BODY_TIMEOUT_MS,
      }),
    };
  }

  async start(): Promise<void> {
    const log = this.o.logger;
    this.subs.push(
      subscribeBroadcast(
        this.o.bus,
        fanout.StreamClaimed,
        (m) => this.handlers.onStreamClaimed(m.nodeId, m.replicaId, m.streamId),
        (err) => log.warn('ignored malformed stream claim', { err }),
      ),
      subscribeBroadcast(
        this.o.bus,
        fanout.Presence,
        (m) => this.ingress.applyPresence(m.nodeId, m.online, m.at),
        (err) => log.warn('ignored malformed presence message', { err }),
      ),
      subscribeBroadcast(
        this.o.bus,
        keyRegistry.LoginSettled,
        (m) => this.logins.settled(m.loginId),
        (err) => log.warn('ignored malformed login-settled message', { err }),
      ),
    );
    await this.sync.start();
    this.engine.start();
    await this.edge.start();
  }

  async stop(): Promise<void> {
    await this.edge.stop();
    const held = [...this.model.nodes.keys()].filter((id) => this.engine.streamFor(id));
    this.engine.stop();
    await this.o.registry.releaseReplica(this.replicaId, held).catch(() => undefined);
    await Promise.all(this.subs.map((s) => s.unsubscribe()));
    await this.sync.stop();
  }

  metrics(): string {
    const s = this.engine.stats;
    const c = this.edge.counters;
    return [
      `switchboard_fanout_streams ${this.engine.streamCount}`,
      `switchboard_fanout_nodes ${this.model.nodes.size}`,
      `switchboard_fanout_frames_total ${s.frames}`,
      `switchboard_fanout_frame_bytes_total ${s.bytes}`,
      `switchboard_fanout_encodes_total ${s.encodes}`,
      `switchboard_fanout_flushes_total ${s.flushes}`,
      `switchboard_fanout_streams_opened_total ${s.streamsOpened}`,
      `switchboard_fanout_event_seq ${this.sync.lastSeq}`,
      `switchboard_edge_upgrades_total ${c.upgrades}`,
      `switchboard_edge_upgrade_failures_total ${c.upgradeFailures}`,
      `switchboard_edge_requests_total ${c.requests}`,
      `switchboard_edge_bad_requests_total ${c.badRequests}`,
      `switchboard_edge_connections ${this.edge.connectionCount}`,
      ...Object.entries(this.edge.limitHits).map(
        ([reason, n]) => `switchboard_edge_limit_hits_total{reason="${reason}"} ${n}`,
      ),
      '',
    ].join('\n');
  }
}
