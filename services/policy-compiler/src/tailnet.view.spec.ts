import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeRecord, UserRecord } from '@switchboard/contracts';
import { policyInputs } from './tailnet.view.js';

const node = (id: number, over: Partial<NodeRecord> = {}): NodeRecord =>
  ({
    id,
    tailnetId: 1,
    userId: 1,
    tags: [],
    ipv4: `100.64.0.${id}`,
    ipv6: `fd7a:115c:a1e0::${id}`,
    routableIPs: [],
    approvedRoutes: [],
    ...over,
  }) as NodeRecord;
const user = (id: number, loginName: string, groups: string[] = []): UserRecord =>
  ({ id, loginName, groups }) as unknown as UserRecord;

test('nodes become policy nodes: owners by login, tagged nodes without a user, other tailnets left out', () => {
  const r = policyInputs(
    1,
    [node(3, { tags: ['tag:web'] }), node(2, { userId: 9 }), node(1), node(4, { tailnetId: 2 })],
    [user(1, 'alice@example.com', ['group:eng'])],
  );
  assert.deepEqual(
    r.nodes.map((n) => [n.id, n.user, n.tags]),
    [
      ['1', 'alice@example.com', []],
      ['2', 'user-9', []],
      ['3', null, ['tag:web']],
    ],
  );
  assert.deepEqual(r.groups, [['alice@example.com', ['group:eng']]]);
});
