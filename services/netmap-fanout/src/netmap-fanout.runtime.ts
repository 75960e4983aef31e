/**
 * Assembles one netmap-fanout replica: read model + sync, fan-out engine, control handlers, the
 * client edge, and the cross-replica broadcasts (stream claims, presence).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { hostname } from 'node:os';
import type { Bus, Subscription } from '@switchboard/bus';
import type { Logger } from '@switchboard/common';
import { processMetrics } from '@switchboard/metrics';
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
import { EmbeddedDerp } from './derp/embedded-derp.js';
import { observeRelayMetrics } from './derp/derp.metrics.js';
import type { MapSettings } from './map-builder.js';
import { EdgeServer, MAX_BODY, type EdgeLegacyOptions } from './edge.server.js';
import { FanoutEngine } from './fanout-engine.js';
import { FanoutMetrics } from './fanout.metrics.js';
import { LegacyChannel } from './legacy.handler.js';
import type { FanoutConfig } from './netmap-fanout.config.js';
import { PolicyState } from './policy-state.js';
import { ReadModel, type ModelChange, type ReadModelReader } from './read-model.js';
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
  /** Where the relay's self-signed certificate is kept (DATA_DIR). */
  dataDir?: string;
  /** Host clients reach this server at (the SERVER_URL host); the relay's default DERPHostName. */
  advertiseHost?: string;
  /** True when DERP_MAP_PATH or DERP_MAP_URL gave the map. */
  derpMapConfigured?: boolean;
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
  readonly metrics: FanoutMetrics;
  /** The embedded DERP relay and STUN server (absent with DERP_SELF_REGION=false). */
  readonly derp: EmbeddedDerp | undefined;
  private unobserveDerp: (() => void) | undefined;
  readonly logins = new LoginWaiters();

  constructor(private readonly o: FanoutRuntimeOptions) {
    this.replicaId =
      o.config.REPLICA_ID ?? `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
    const log = o.logger;
    this.metrics = new FanoutMetrics({
      engine: () => this.engine,
      edge: () => this.edge,
      model: this.model,
      sync: () => this.sync,
      replicaId: this.replicaId,
    });
    this.policy = new PolicyState(this.model, log.child('policy'));
    const settings: MapSettings = {
      derpMap: o.derpMap,
      magicDns: o.config.MAGIC_DNS,
      nameservers: o.config.DNS_NAMESERVERS,
      disableCaptivePortalDetection: o.config.DISABLE_CAPTIVE_PORTAL_DETECTION,
    };
    const self = o.config.DERP_SELF_REGION;
    if (self === 'true' || (self === 'auto' && !o.derpMapConfigured))
      this.derp = new EmbeddedDerp({
        config: o.config,
        model: this.model,
        settings,
        logger: log.child('derp'),
        host: o.host,
        dataDir: o.dataDir ?? '.',
        advertiseHost: o.advertiseHost,
      });
    this.engine = new FanoutEngine({
      model: this.model,
      settings,
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
      onFlush: (n) => this.metrics.onFlush(n),
    });
    const sink = this.derp
      ? {
          apply: (changes: ModelChange[]) => {
            this.engine.apply(changes);
            this.derp?.onModelChanges(changes);
          },
        }
      : this.engine;
    this.ingress = new ViewIngress(this.store, this.policy, sink, log.child('ingress'));
    this.sync = new ModelSync(o.bus, this.ingress, log.child('sync'), (ev) => this.metrics.onEvent(ev));
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
      ...(this.derp ? { extraUpgrade: this.derp.upgradeHandler } : {}),
      extraRoutes: (req, res) => {
        if (this.derp?.relay.handleRequest(req, res)) return true;
        if (req.url === '/ready') {
          const ok = this.sync.ready;
          res
            .writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' })
            .end(ok ? 'ready\n' : 'loading read model\n');
          return true;
        }
        if (req.url === '/metrics') {
          const m = processMetrics();
          m.text().then(
            (body) => res.writeHead(200, { 'content-type': m.contentType }).end(body),
            (err: unknown) => {
              log.error('could not render /metrics', { err });
              res.writeHead(500).end();
            },
          );
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
    this.metrics.start();
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
    if (this.derp) this.edge.setTls(await this.derp.loadTls());
    await this.edge.start();
    if (this.derp) {
      await this.derp.start(this.edge.boundPort);
      const derp = this.derp;
      this.unobserveDerp = observeRelayMetrics(() => derp.metricsText());
      const sub = this.derp.startMesh(this.o.bus, this.replicaId);
      if (sub) this.subs.push(sub);
    }
  }

  async stop(): Promise<void> {
    this.unobserveDerp?.();
    this.derp?.relay.close();
    await this.edge.stop();
    await this.derp?.stop();
    const held = [...this.model.nodes.keys()].filter((id) => this.engine.streamFor(id));
    this.engine.stop();
    await this.o.registry.releaseReplica(this.replicaId, held).catch(() => undefined);
    await Promise.all(this.subs.map((s) => s.unsubscribe()));
    await this.sync.stop();
    this.metrics.stop();
  }

  /**
   * Readiness: the read model is loaded and current (at most `maxLagEvents` behind the log's head).
   * The composition root adds the bus and Redis.
   */
  async readiness(maxLagEvents = 1000): Promise<true | string> {
    if (!this.sync.ready) return 'the read model is still loading from the snapshots';
    const lag = await this.sync.lag();
    return lag <= maxLagEvents ? true : `the read model is ${lag} events behind the log`;
  }
}
