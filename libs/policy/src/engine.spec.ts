/** PolicyEngine API behaviour beyond the golden files. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from '@switchboard/common';
import { PolicyEngine } from './engine.js';
import { parsePolicy } from './policy.js';
import type { PolicyNode } from './types.js';

const node = (
  id: string,
  user: string | null,
  tags: string[] = [],
  extra: Partial<PolicyNode> = {},
): PolicyNode => ({
  id,
  user,
  tags,
  ipv4: `100.64.0.${id}`,
  ipv6: `fd7a:115c:a1e0::${id}`,
  routableIPs: [],
  approvedRoutes: [],
  ...extra,
});

describe('defaults', () => {
  test('a policy with neither acls nor grants allows all, like a null policy', () => {
    for (const policy of [null, parsePolicy('{"groups": {}}'), parsePolicy('// only a comment')]) {
      const e = new PolicyEngine(policy, { nodes: [node('1', 'a@x.com'), node('2', null, ['tag:t'])] });
      assert.equal(
        e.filterJsonFor('1'),
        '[{"SrcIPs":["*"],"DstPorts":[{"IP":"*","Ports":{"First":0,"Last":65535}}]}]',
      );
      assert.deepEqual(e.peersOf('2'), ['1']);
      assert.equal(e.sshPolicyFor('1'), null);
    }
  });

  test('filters never carry SrcBits or Bits and match their JSON form', () => {
    const p = parsePolicy(
      '{"tagOwners": {"tag:t": []}, "acls": [{"action": "accept", "src": ["*"], "dst": ["tag:t:22"]}]}',
    );
    const e = new PolicyEngine(p, { nodes: [node('1', 'a@x.com'), node('2', null, ['tag:t'])] });
    const json = e.filterJsonFor('2');
    assert.deepEqual(JSON.parse(json), e.filterFor('2'));
    assert.doesNotMatch(json, /SrcBits|"Bits"/);
  });
});

describe('identity', () => {
  const policy = parsePolicy(
    `{
    "groups": {"group:eng": ["alice@"]},
    "tagOwners": {"tag:db": ["group:eng"], "tag:ci": ["tag:db"], "tag:open": []},
    "acls": [{"action": "accept", "src": ["group:eng", "group:sre"], "dst": ["tag:db:5432"]}],
  }`,
    { externalGroups: ['sre'] },
  );

  test('a user token without a domain matches a login without one; tagged nodes have no user', () => {
    const e = new PolicyEngine(policy, { nodes: [node('1', 'alice'), node('2', 'alice', ['tag:db'])] });
    assert.deepEqual(e.filterFor('2')[0]?.SrcIPs, ['100.64.0.1', 'fd7a:115c:a1e0::1']);
  });

  test('IdP groups from setUserGroups and from the node itself', () => {
    const e = new PolicyEngine(policy, { nodes: [node('2', null, ['tag:db']), node('3', 'bob@x.com')] });
    assert.deepEqual(e.peersOf('3'), []);
    const change = e.setUserGroups('bob@x.com', ['group:sre']);
    assert.deepEqual([...change.changed].sort(), ['2', '3']);
    assert.deepEqual(e.peersOf('3'), ['2']);
    e.upsertNode(node('4', 'carol@x.com', [], { groups: ['sre'] }));
    assert.deepEqual(e.peersOf('2'), ['3', '4']);
    e.setUserGroups('bob@x.com', []);
    assert.deepEqual(e.peersOf('2'), ['4']);
  });

  test('tagOwners checks for users and for tagged credentials', () => {
    const e = new PolicyEngine(policy);
    assert.deepEqual(e.tagsAllowedFor('alice@', ['tag:db']), { ok: true, denied: [] });
    assert.deepEqual(e.tagsAllowedFor('alice@', ['tag:ci']), { ok: true, denied: [] });
    assert.deepEqual(e.tagsAllowedFor('bob@x.com', ['tag:db', 'tag:nope']), {
      ok: false,
      denied: ['tag:db', 'tag:nope'],
    });
    assert.deepEqual(e.tagsAllowedFor('alice@', ['tag:open']), { ok: false, denied: ['tag:open'] });
    assert.deepEqual(e.tagsAllowedForTags(['tag:db'], ['tag:ci', 'tag:db', 'tag:open']), {
      ok: false,
      denied: ['tag:open'],
    });
  });
});

describe('routes, caps, ssh', () => {
  const policy = parsePolicy(`{
    "groups": {"group:net": ["alice@x.com"]},
    "tagOwners": {"tag:router": [], "tag:exit": []},
    "autoApprovers": {
      "routes": {"10.0.0.0/8": ["tag:router"], "0.0.0.0/0": ["tag:router"], "192.168.0.0/16": ["group:net"]},
      "exitNode": ["tag:exit"],
    },
    "nodeAttrs": [{"target": ["tag:router", "100.64.0.9"], "attr": ["mullvad", "nextdns:abc"]}],
    "randomizeClientPort": true,
    "acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}],
    "ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["localpart:*@x.com"]}],
  }`);
  const e = new PolicyEngine(policy, { sshCheckUrlBase: 'https://sb.example' });

  test('autoApprovers approve covered subnet routes; exit routes only through exitNode', () => {
    // A 0.0.0.0/0 key under "routes" covers every IPv4 subnet route but never the exit routes.
    const announce = ['10.1.0.0/16', '172.16.0.0/12', '0.0.0.0/0', '::/0', 'fd00::/64'];
    assert.deepEqual(e.autoApprovedRoutes(node('1', null, ['tag:router'], { routableIPs: announce })), [
      '10.1.0.0/16',
      '172.16.0.0/12',
    ]);
    assert.deepEqual(e.autoApprovedRoutes(node('2', null, ['tag:exit'], { routableIPs: announce })), [
      '0.0.0.0/0',
      '::/0',
    ]);
    assert.deepEqual(
      e.autoApprovedRoutes(node('3', 'alice@x.com', [], { routableIPs: ['192.168.5.0/24'] })),
      ['192.168.5.0/24'],
    );
    assert.deepEqual(
      e.autoApprovedRoutes(node('4', 'bob@x.com', [], { routableIPs: ['192.168.5.0/24'] })),
      [],
    );
  });

  test('nodeAttrs and randomizeClientPort become node capabilities', () => {
    e.upsertNode(node('1', null, ['tag:router']));
    e.upsertNode(node('9', 'bob@x.com'));
    e.upsertNode(node('5', 'bob@x.com'));
    assert.deepEqual(e.nodeCapsFor('1'), {
      'randomize-client-port': null,
      mullvad: null,
      'nextdns:abc': null,
    });
    assert.deepEqual(e.nodeCapsFor('9'), {
      'randomize-client-port': null,
      mullvad: null,
      'nextdns:abc': null,
    });
    assert.deepEqual(e.nodeCapsFor('5'), { 'randomize-client-port': null });
  });

  test('localpart users map each user to their email local part', () => {
    const rules = e.sshPolicyFor('5')?.rules ?? [];
    assert.deepEqual(
      rules.map((r) => r.sshUsers),
      [{ root: '' }, { bob: 'bob' }],
    );
    assert.deepEqual(rules[0]?.principals, [
      { nodeIP: '100.64.0.5' },
      { nodeIP: '100.64.0.9' },
      { nodeIP: 'fd7a:115c:a1e0::5' },
      { nodeIP: 'fd7a:115c:a1e0::9' },
    ]);
  });
});

describe('input checks', () => {
  test('bad node input is a ValidationError; unknown ids throw', () => {
    const e = new PolicyEngine(null);
    assert.throws(() => e.upsertNode(node('1', 'a@x.com', [], { ipv4: '1.2.3' })), ValidationError);
    assert.throws(() => e.upsertNode(node('1', 'a@x.com', [], { ipv4: '', ipv6: '' })), ValidationError);
    assert.throws(() => e.upsertNode(node('1', 'a@x.com', ['web'])), ValidationError);
    assert.throws(
      () => e.upsertNode(node('1', 'a@x.com', [], { routableIPs: ['10.0.0.1'] })),
      ValidationError,
    );
    assert.throws(() => e.filterFor('nope'), /unknown node/);
    assert.equal(e.removeNode('nope').changed.size, 0);
  });

  test('served routes are announced ∩ approved; announcing an exit route alone does nothing', () => {
    const p = parsePolicy(
      '{"hosts": {"lan": "10.0.0.0/8"}, "acls": [{"action": "accept", "src": ["*"], "dst": ["lan:22", "autogroup:internet:*"]}]}',
    );
    const e = new PolicyEngine(p, {
      nodes: [
        node('1', 'a@x.com'),
        node('2', null, ['tag:r'], {
          routableIPs: ['10.1.0.0/16', '0.0.0.0/0', '::/0'],
          approvedRoutes: ['10.2.0.0/16'],
        }),
      ],
    });
    assert.deepEqual(e.filterFor('2'), []);
    e.upsertNode(
      node('2', null, ['tag:r'], {
        routableIPs: ['10.1.0.0/16', '0.0.0.0/0', '::/0'],
        approvedRoutes: ['10.1.0.0/16', '0.0.0.0/0'],
      }),
    );
    const dsts = e.filterFor('2').flatMap((r) => (r.DstPorts ?? []).map((d) => d.IP));
    assert.ok(dsts.includes('10.0.0.0/8'));
    assert.ok(dsts.includes('11.0.0.0-100.63.255.255'));
    assert.ok(e.canSee('1', '2') && e.canSee('2', '1'));
  });
});
