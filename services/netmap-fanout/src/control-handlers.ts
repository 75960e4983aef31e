/**
 * The control endpoints a tailscale client calls inside its Noise session, independent of the
 * transport: /machine/register (forwarded to key-registry) and /machine/map (lite updates forwarded
 * to key-registry; streams served from the read model by the fan-out engine). Every request is bound
 * to the Noise peer's machine key: a node key owned by another machine is refused.
 */
import { randomUUID } from 'node:crypto';
import type { Bus } from '@switchboard/bus';
import { errorMessage, type Logger } from '@switchboard/common';
import {
  callRpc,
  fanout,
  identity,
  keyRegistry,
  publishBroadcast,
  type NodeRecord,
  type RegisterInput,
  type RegisterResult,
} from '@switchboard/contracts';
import type { RegisterResponse } from '@switchboard/protocol';
import type { FanoutEngine } from './fanout-engine.js';
import type { LoginWaiters } from './login-waiters.js';
import { TAGGED_USER_ID } from './map-builder.js';
import type { ReadModelReader } from './read-model.js';
import type { StreamRegistry } from './stream-registry.js';
import type { MapParams, RegisterParams } from './tailcfg-adapter.js';
import type { ViewIngress } from './view-ingress.js';

export interface ControlContext {
  /** `mkey:…` of the authenticated Noise peer. */
  machineKey: string;
  /** Capability version from the Noise initiation. */
  capVersion: number;
}

/** Where a map response goes; implemented over an HTTP/2 stream. */
export interface MapResponder {
  /** Sends status 200 and headers; frames follow. */
  start(): void;
  write(frame: Buffer): void;
  /**
   * Ends the response. With `graceMs`, a client that has not read everything by then (a stream
   * being closed while its reader is stalled) is reset, so its unsent bytes are freed.
   */
  end(graceMs?: number): void;
  fail(status: number, message: string): void;
  onClose(cb: () => void): void;
  readonly closed: boolean;
}

/** A map stream being closed (superseded, deleted) may take this long to drain before a reset. */
const CLOSED_STREAM_GRACE_MS = 2000;

/** A register reply: a RegisterResponse, or a plain-text error (status >= 400). */
export interface RegisterReply {
  status: number;
  body: RegisterResponse | string;
}

export interface ControlHandlerDeps {
  bus: Bus;
  /** Read only here: records fetched from their owners enter through `ingress`. */
  model: ReadModelReader;
  engine: FanoutEngine;
  ingress: ViewIngress;
  registry: StreamRegistry;
  replicaId: string;
  logger: Logger;
  /** Held browser-login follow-ups, woken by `login-settled`. */
  logins: LoginWaiters;
  /** How often a held follow-up asks key-registry again without a wake-up (default 3 s). */
  loginPollMs?: number;
}

const ZERO_TIME_PREFIX = '0001-01-01';

export class ControlHandlers {
  private readonly log: Logger;
  constructor(private readonly d: ControlHandlerDeps) {
    this.log = d.logger;
  }

  async register(
    ctx: ControlContext,
    req: RegisterParams,
    clientGone: () => boolean = () => false,
  ): Promise<RegisterReply> {
    const input: RegisterInput = {
      machineKey: ctx.machineKey,
      capVersion: req.version,
      nodeKey: req.nodeKey,
      oldNodeKey: req.oldNodeKey,
      authKey: req.authKey,
      expiry: req.expiry !== null && !req.expiry.startsWith(ZERO_TIME_PREFIX) ? req.expiry : null,
      followup: req.followup,
      hostinfo: req.hostinfo,
      ephemeral: req.ephemeral,
    };
    let result: RegisterResult;
    try {
      result = await callRpc(this.d.bus, keyRegistry.Register, input, { timeoutMs: 15_000 });
      // A browser login in progress: hold the follow-up (the client waits without a timeout) and
      // ask again when the login settles or the poll fires; an expired login yields a fresh URL.
      while (result.kind === 'login-pending' && !clientGone()) {
        const left = Date.parse(result.expiresAt) - Date.now();
        await this.d.logins.wait(result.loginId, Math.max(50, Math.min(this.d.loginPollMs ?? 3000, left)));
        if (clientGone()) break;
        result = await callRpc(this.d.bus, keyRegistry.Register, input, { timeoutMs: 15_000 });
      }
    } catch (err) {
      this.log.error('registration failed: key-registry did not answer', { machineKey: ctx.machineKey, err });
      return { status: 503, body: `registration is temporarily unavailable: ${errorMessage(err)}` };
    }
    switch (result.kind) {
      case 'ok': {
        this.d.ingress.applyDirect({ node: result.node });
        const profile = await this.profileFor(result.node);
        return {
          status: 200,
          body: registerResponse({
            User: {
              ID: profile.id,
              DisplayName: profile.displayName,
              ...(profile.pic ? { ProfilePicURL: profile.pic } : {}),
            },
            Login: {
              ID: profile.id,
              Provider: profile.provider,
              LoginName: profile.loginName,
              DisplayName: profile.displayName,
            },
            NodeKeyExpired: result.nodeKeyExpired,
            MachineAuthorized: result.machineAuthorized,
          }),
        };
      }
      case 'logged-out':
      case 'node-key-expired':
        return { status: 200, body: registerResponse({ NodeKeyExpired: true, MachineAuthorized: false }) };
      case 'auth-url':
        return { status: 200, body: registerResponse({ AuthURL: result.url }) };
      case 'login-pending':
        // Only when the client went away while held: nobody reads this answer.
        return { status: 503, body: 'login still in progress' };
      case 'error':
        this.log.info('registration refused', { machineKey: ctx.machineKey, reason: result.message });
        return { status: 200, body: registerResponse({ Error: result.message }) };
    }
  }

  private async profileFor(
    node: NodeRecord,
  ): Promise<{ id: number; displayName: string; loginName: string; provider: string; pic: string | null }> {
    if (node.userId === null)
      return {
        id: TAGGED_USER_ID,
        displayName: 'Tagged Devices',
        loginName: 'tagged-devices',
        provider: '',
        pic: null,
      };
    let u = this.d.model.users.get(node.userId);
    if (!u) {
      try {
        u = (await callRpc(this.d.bus, identity.GetUser, { id: node.userId })).user ?? undefined;
        if (u) this.d.ingress.applyDirect({ user: u });
      } catch (err) {
        this.log.warn('could not load the user for a register response', { userId: node.userId, err });
      }
    }
    return {
      id: node.userId,
      displayName: u?.displayName || u?.name || `user ${node.userId}`,
      loginName: u?.loginName ?? `user-${node.userId}`,
      provider: u?.provider ?? 'local',
      pic: u?.profilePicUrl ?? null,
    };
  }

  /** Finds the node for a map request, bound to the Noise machine key. */
  private async nodeFor(
    ctx: ControlContext,
    nodeKey: string,
  ): Promise<NodeRecord | { status: number; message: string }> {
    let node = this.d.model.nodeByKey(nodeKey);
    if (!node) {
      // The node may have registered a moment ago, before its event reached this replica.
      const r = await callRpc(this.d.bus, keyRegistry.GetNodeByKey, { machineKey: ctx.machineKey, nodeKey });
      if (r.kind === 'not-found') return { status: 404, message: 'node not found' };
      if (r.kind === 'machine-mismatch') {
        this.log.warn('map request refused: node key belongs to another machine', {
          machineKey: ctx.machineKey,
        });
        return { status: 403, message: 'node key does not belong to this machine' };
      }
      this.d.ingress.applyDirect({ node: r.node });
      node = this.d.model.nodeByKey(nodeKey) ?? r.node;
    }
    if (node.machineKey !== ctx.machineKey) {
      this.log.warn('map request refused: node key belongs to another machine', {
        nodeId: node.id,
        machineKey: ctx.machineKey,
      });
      return { status: 403, message: 'node key does not belong to this machine' };
    }
    return node;
  }

  async map(ctx: ControlContext, req: MapParams, res: MapResponder): Promise<void> {
    let found: NodeRecord | { status: number; message: string };
    try {
      found = await this.nodeFor(ctx, req.nodeKey);
    } catch (err) {
      this.log.error('map request failed: key-registry did not answer', { err });
      res.fail(503, 'control server is temporarily unavailable; the client will retry');
      return;
    }
    if ('status' in found) {
      res.fail(found.status, found.message);
      return;
    }
    const node = found;
    const update = this.updateFrom(ctx, node, req);
    if (!req.stream && req.omitPeers) {
      // Lite update: apply, answer 200 with an empty body.
      try {
        if (update) await callRpc(this.d.bus, keyRegistry.UpdateNode, update);
        res.start();
        res.end();
      } catch (err) {
        this.log.warn('lite map update failed', { nodeId: node.id, err });
        res.fail(500, `update failed: ${errorMessage(err)}`);
      }
      return;
    }
    if (update) {
      // Streaming requests carry the same fields; apply the non-empty ones without delaying the map.
      callRpc(this.d.bus, keyRegistry.UpdateNode, update).catch((err: unknown) =>
        this.log.warn('applying map request fields failed', { nodeId: node.id, err }),
      );
    }
    res.start();
    if (!req.stream) {
      res.write(this.d.engine.fullMapFrame(node));
      res.end();
      return;
    }
    this.openStream(node, res);
  }

  private openStream(node: NodeRecord, res: MapResponder): void {
    const streamId = randomUUID();
    const stream = this.d.engine.open(streamId, node, {
      write: (frame) => res.write(frame),
      close: () => res.end(CLOSED_STREAM_GRACE_MS),
    });
    const at = new Date().toISOString();
    this.d.registry
      .claim(node.id, { replicaId: this.d.replicaId, streamId, since: Date.now() })
      .then(() => {
        publishBroadcast(this.d.bus, fanout.StreamClaimed, {
          nodeId: node.id,
          replicaId: this.d.replicaId,
          streamId,
        });
        publishBroadcast(this.d.bus, fanout.Presence, {
          nodeId: node.id,
          tailnetId: node.tailnetId,
          online: true,
          at,
          replicaId: this.d.replicaId,
        });
      })
      .catch((err: unknown) => this.log.error('could not record the stream owner', { nodeId: node.id, err }));
    res.onClose(() => {
      this.d.engine.detach(stream);
      this.d.registry
        .release(node.id, streamId)
        .then((wasCurrent) => {
          if (!wasCurrent) return;
          publishBroadcast(this.d.bus, fanout.Presence, {
            nodeId: node.id,
            tailnetId: node.tailnetId,
            online: false,
            at: new Date().toISOString(),
            replicaId: this.d.replicaId,
          });
        })
        .catch((err: unknown) =>
          this.log.error('could not release the stream owner', { nodeId: node.id, err }),
        );
    });
  }

  /** Another replica took this node's stream: close ours. */
  onStreamClaimed(nodeId: number, replicaId: string, streamId: string): void {
    // Local supersession is handled by the engine when the newer stream opens.
    if (replicaId === this.d.replicaId) return;
    const s = this.d.engine.streamFor(nodeId);
    if (s && s.id !== streamId) this.d.engine.close(s, 'superseded by a newer stream on another replica');
  }

  private updateFrom(ctx: ControlContext, node: NodeRecord, req: MapParams) {
    const endpoints = req.endpoints.length > 0 || (!req.stream && req.omitPeers) ? req.endpoints : null;
    const disco = req.discoKey !== null && req.discoKey !== node.discoKey ? req.discoKey : null;
    const hostinfo = req.hostinfo;
    const changed =
      disco !== null ||
      (endpoints !== null && JSON.stringify(endpoints) !== JSON.stringify(node.endpoints)) ||
      (hostinfo !== null && !sameHostinfo(hostinfo, node.hostinfo)) ||
      (req.version > 0 && req.version !== node.capVersion);
    if (!changed) return null;
    return {
      machineKey: ctx.machineKey,
      nodeKey: node.nodeKey,
      capVersion: req.version,
      discoKey: disco,
      endpoints,
      hostinfo,
    };
  }
}

/**
 * A RegisterResponse with Go's zero values in the fields not given: Go's encoder always writes
 * them (none is omitempty), so clients read the same struct either way.
 */
function registerResponse(fields: Partial<RegisterResponse>): RegisterResponse {
  return {
    User: { ID: 0, DisplayName: '' },
    Login: { ID: 0, Provider: '', LoginName: '', DisplayName: '' },
    NodeKeyExpired: false,
    MachineAuthorized: false,
    AuthURL: '',
    Error: '',
    ...fields,
  };
}

function sameHostinfo(a: Record<string, unknown>, b: Record<string, unknown> | null): boolean {
  if (!b) return false;
  // NetInfo is kept when a request omits it, so compare with it filled in.
  const merged = a.NetInfo === undefined && b.NetInfo !== undefined ? { ...a, NetInfo: b.NetInfo } : a;
  return JSON.stringify(merged) === JSON.stringify(b);
}
