/** `switchboard policy compile`: output shape and located errors for policy and NODES.json. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runPolicyCompile } from './offline-compile.js';

const policyText = `{
  // routers are approved by policy
  "tagOwners": {"tag:router": []},
  "autoApprovers": {"routes": {"10.0.0.0/8": ["tag:router"]}},
  "acls": [{"action": "accept", "src": ["alice@x.com"], "dst": ["10.0.0.0/8:22"]}],
}`;
const nodesJson = JSON.stringify([
  {
    id: 1,
    user: 'alice@x.com',
    tags: [],
    ipv4: '100.64.0.1',
    ipv6: 'fd7a:115c:a1e0::1',
    routableIPs: [],
    approvedRoutes: [],
  },
  {
    id: '2',
    user: null,
    tags: ['tag:router'],
    ipv4: '100.64.0.2',
    ipv6: '',
    routableIPs: ['10.1.0.0/16'],
    approvedRoutes: [],
  },
  {
    id: '10',
    user: 'bob@x.com',
    tags: [],
    ipv4: '100.64.0.10',
    ipv6: 'fd7a:115c:a1e0::a',
    routableIPs: [],
    approvedRoutes: [],
  },
]);

test('prints every node in id order with filter and peers (autoApprovers applied)', () => {
  const r = runPolicyCompile({ policyText, nodesJson });
  assert.equal(r.exitCode, 0, r.stderr);
  assert.equal(r.stderr, '');
  const out = JSON.parse(r.stdout) as Record<string, { filter: unknown[]; peers: string[] }>;
  assert.deepEqual(Object.keys(out), ['1', '2', '10']);
  assert.deepEqual(out['2'], {
    filter: [
      {
        SrcIPs: ['100.64.0.1', 'fd7a:115c:a1e0::1'],
        DstPorts: [{ IP: '10.0.0.0/8', Ports: { First: 22, Last: 22 } }],
      },
    ],
    peers: ['1'],
  });
  assert.deepEqual(out['10'], { filter: [], peers: [] });
});

test('--node limits the output; an unknown node is an error', () => {
  const one = runPolicyCompile({ policyText, nodesJson, nodeId: '1' });
  assert.deepEqual(Object.keys(JSON.parse(one.stdout) as object), ['1']);
  const bad = runPolicyCompile({ policyText, nodesJson, nodeId: '7' });
  assert.deepEqual(bad, { exitCode: 1, stdout: '', stderr: 'nodes: unknown node "7"\n' });
});

test('an invalid policy exits 1 with the location of the problem', () => {
  const r = runPolicyCompile({
    policyText: '{\n  "acls": [\n    {"action": "accept", "src": ["tag:x"], "dst": ["*:99999"]},\n  ],\n}',
    nodesJson: '[]',
  });
  assert.equal(r.exitCode, 1);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, 'policy:3:52: dst="*:99999": port range "99999": port number out of range\n');
});

test('invalid NODES.json exits 1 with locations', () => {
  const cases: [string, string][] = [
    ['[{"id": "1",}', 'nodes:1:1: parsing HuJSON: unexpected end of input, expected "," or "]"\n'],
    ['{"id": "1"}', 'nodes:1:1: expected a JSON array of nodes, got object\n'],
    [
      '[{"id": "1", "ipv4": "100.64.0.1", "tags": "tag:x"}]',
      'nodes:1:44: nodes[0].tags: expected an array of strings, got string\n',
    ],
    [
      '[{"id": "1", "ipv4": "100.64.0.300"}]',
      'nodes:1:22: nodes[0].ipv4: invalid IPv4 address "100.64.0.300"\n',
    ],
    ['[{"ipv4": "100.64.0.1"}]', 'nodes:1:2: nodes[0]: missing field "id"\n'],
    ['[{"id": "1", "ipv4": "100.64.0.1", "color": "red"}]', 'nodes:1:36: nodes[0]: unknown field: "color"\n'],
    [
      '[{"id": "1", "ipv4": "100.64.0.1"},\n {"id": "1", "ipv4": "100.64.0.2"}]',
      'nodes:2:9: nodes[1]: duplicate node id "1"\n',
    ],
    [
      '[{"id": "1", "ipv4": "100.64.0.1", "approvedRoutes": ["10.0.0.1"]}]',
      'nodes:1:55: nodes[0].approvedRoutes: invalid route prefix "10.0.0.1"\n',
    ],
  ];
  for (const [text, stderr] of cases) {
    assert.deepEqual(
      runPolicyCompile({ policyText: '{}', nodesJson: text }),
      { exitCode: 1, stdout: '', stderr },
      text,
    );
  }
});

test('failing policy tests refuse the policy', () => {
  const r = runPolicyCompile({
    policyText: '{"acls": [], "tests": [{"src": "alice@x.com", "accept": ["100.64.0.10:22"]}]}',
    nodesJson,
  });
  assert.equal(r.exitCode, 1);
  assert.equal(
    r.stderr,
    'policy:1:58: test(s) failed: alice@x.com -> 100.64.0.10:22: expected ALLOWED, got DENIED\n',
  );
});
