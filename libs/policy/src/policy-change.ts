/**
 * What a mutation of the engine changed: the public `PolicyChange` and its lazy implementation.
 * The union of changed nodes and the per-node peer deltas are built only when read, from the
 * flipped pairs the peer step recorded.
 */
import { compareNodeIds } from './node-store.js';

/** Peers that appeared or disappeared for one node. */
export interface PeerDelta {
  readonly added: readonly string[];
  readonly removed: readonly string[];
}

/** What a mutation changed. Ids are of nodes that exist after the change. */
export interface PolicyChange {
  /** Nodes whose packet filter or peer set changed (union of the two sets below). */
  readonly changed: ReadonlySet<string>;
  readonly filterChanged: ReadonlySet<string>;
  readonly peersChanged: ReadonlySet<string>;
  /** Nodes whose SSH policy may have changed (structural, may over-approximate). */
  readonly sshChanged: ReadonlySet<string>;
  /** Nodes whose nodeAttrs capabilities changed. */
  readonly capsChanged: ReadonlySet<string>;
  /** Per node, peers added/removed. Present for node and group changes, absent after setPolicy. */
  readonly peerDelta?: ReadonlyMap<string, PeerDelta>;
}

/** Peers one touched node gained and lost (ids of nodes that exist after the change). */
export interface PeerFlips {
  readonly id: string;
  readonly present: boolean;
  readonly gained: string[];
  readonly lost: string[];
}

/** A PolicyChange whose union and per-node deltas are built only when read. */
export class ChangeResult implements PolicyChange {
  private changedSet: Set<string> | null = null;
  private delta: Map<string, PeerDelta> | null = null;

  constructor(
    readonly filterChanged: ReadonlySet<string>,
    readonly peersChanged: ReadonlySet<string>,
    readonly sshChanged: ReadonlySet<string>,
    readonly capsChanged: ReadonlySet<string>,
    private readonly flips: readonly PeerFlips[] | null,
    private readonly exists: (id: string) => boolean,
  ) {}

  get changed(): ReadonlySet<string> {
    this.changedSet ??= new Set([...this.filterChanged, ...this.peersChanged]);
    return this.changedSet;
  }

  get peerDelta(): ReadonlyMap<string, PeerDelta> | undefined {
    if (this.flips === null) return undefined;
    if (this.delta === null) {
      const acc = new Map<string, { added: Set<string>; removed: Set<string> }>();
      const note = (id: string, other: string, added: boolean): void => {
        let d = acc.get(id);
        if (d === undefined) acc.set(id, (d = { added: new Set(), removed: new Set() }));
        (added ? d.added : d.removed).add(other);
      };
      for (const f of this.flips) {
        for (const x of f.gained) {
          note(x, f.id, true);
          if (f.present) note(f.id, x, true);
        }
        for (const x of f.lost) {
          note(x, f.id, false);
          if (f.present) note(f.id, x, false);
        }
      }
      this.delta = new Map();
      for (const [id, d] of acc) {
        if (!this.exists(id)) continue;
        this.delta.set(id, {
          added: [...d.added].filter(this.exists).sort(compareNodeIds),
          removed: [...d.removed].sort(compareNodeIds),
        });
      }
    }
    return this.delta;
  }
}

/** The change of a no-op mutation. */
export function emptyChange(): PolicyChange {
  return new ChangeResult(new Set(), new Set(), new Set(), new Set(), [], () => true);
}
