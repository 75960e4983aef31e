/**
 * The transaction shell every key-registry use case writes through: one Postgres transaction per
 * state change, its outbox event inside it, the relay kicked after commit, and unique violations from
 * concurrent inserts (a name or address taken between read and insert) retried with fresh reads.
 */
import type { Db, Queryable } from '@switchboard/db';
import { appendOutbox } from '@switchboard/db';
import { NodeRemoved, NodeUpserted, type NodeRecord } from '@switchboard/contracts';
import { KeyRegistryRepository } from './key-registry.repository.js';

export const SCHEMA = 'key_registry';

export type RemovalReason = 'deleted' | 'logout-ephemeral' | 'ephemeral-inactive' | 'user-deleted';

export function pgCode(err: unknown): string | undefined {
  const c = (err as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : undefined;
}

export class RegistryStore {
  constructor(
    readonly db: Db,
    readonly repo: KeyRegistryRepository,
    private readonly kickOutbox: () => void,
  ) {}

  async tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        const out = await this.db.transaction(fn);
        this.kickOutbox();
        return out;
      } catch (err) {
        if (pgCode(err) === '23505' && attempt < 20) continue;
        throw err;
      }
    }
  }

  async emitUpsert(q: Queryable, node: NodeRecord): Promise<void> {
    // Node events carry versions and every node change holds the node's row lock (or the machine
    // lock for a new node), so per-node order is kept without serialising the whole schema.
    await appendOutbox(q, SCHEMA, NodeUpserted.subject, { node }, { order: 'entity-order' });
  }

  async emitRemoved(q: Queryable, node: NodeRecord, reason: RemovalReason): Promise<void> {
    await appendOutbox(
      q,
      SCHEMA,
      NodeRemoved.subject,
      { nodeId: node.id, tailnetId: node.tailnetId, version: node.version + 1, reason },
      { order: 'entity-order' },
    );
  }
}
