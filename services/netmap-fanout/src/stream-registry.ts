/**
 * Which replica holds each node's map stream. Redis in multi-replica deployments, a Map in the
 * one-process mode. A claim overwrites any older owner (the newest stream wins); a release only
 * removes the entry when it still names the releasing stream.
 */
import type { Redis } from 'ioredis';

export interface StreamOwner {
  replicaId: string;
  streamId: string;
  since: number;
}

export interface StreamRegistry {
  claim(nodeId: number, owner: StreamOwner): Promise<void>;
  /** True when the entry named this stream and was removed. */
  release(nodeId: number, streamId: string): Promise<boolean>;
  owner(nodeId: number): Promise<StreamOwner | null>;
  /** Drops every entry of a replica (on clean shutdown). */
  releaseReplica(replicaId: string, nodeIds: number[]): Promise<void>;
  close(): Promise<void>;
}

export class MemoryStreamRegistry implements StreamRegistry {
  private readonly owners = new Map<number, StreamOwner>();
  async claim(nodeId: number, owner: StreamOwner): Promise<void> {
    this.owners.set(nodeId, owner);
  }
  async release(nodeId: number, streamId: string): Promise<boolean> {
    if (this.owners.get(nodeId)?.streamId !== streamId) return false;
    this.owners.delete(nodeId);
    return true;
  }
  async owner(nodeId: number): Promise<StreamOwner | null> {
    return this.owners.get(nodeId) ?? null;
  }
  async releaseReplica(replicaId: string, nodeIds: number[]): Promise<void> {
    for (const id of nodeIds) if (this.owners.get(id)?.replicaId === replicaId) this.owners.delete(id);
  }
  async close(): Promise<void> {}
}

const RELEASE_IF_CURRENT = `
if redis.call('HGET', KEYS[1], 'streamId') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0`;

export class RedisStreamRegistry implements StreamRegistry {
  constructor(
    private readonly redis: Redis,
    private readonly prefix = 'switchboard:stream:',
  ) {}

  private key(nodeId: number): string {
    return `${this.prefix}${nodeId}`;
  }

  async claim(nodeId: number, o: StreamOwner): Promise<void> {
    await this.redis.hset(this.key(nodeId), {
      replicaId: o.replicaId,
      streamId: o.streamId,
      since: String(o.since),
    });
  }

  async release(nodeId: number, streamId: string): Promise<boolean> {
    const r = await this.redis.eval(RELEASE_IF_CURRENT, 1, this.key(nodeId), streamId);
    return r === 1;
  }

  async owner(nodeId: number): Promise<StreamOwner | null> {
    const h = await this.redis.hgetall(this.key(nodeId));
    if (!h.replicaId || !h.streamId) return null;
    return { replicaId: h.replicaId, streamId: h.streamId, since: Number(h.since ?? 0) };
  }

  async releaseReplica(replicaId: string, nodeIds: number[]): Promise<void> {
    for (const id of nodeIds) {
      const o = await this.owner(id);
      if (o?.replicaId === replicaId) await this.release(id, o.streamId);
    }
  }

  async close(): Promise<void> {
    await this.redis.quit();
  }
}
