/**
 * The policy's own `tests` and `sshTests`: contradictory policies (the rules deny what a test
 * expects, or the other way round) are refused with the failing assertion located.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PolicyEngine } from './engine.js';
import { policyTestsError, runPolicyTests } from './policy-tests.js';
import { parsePolicy } from './policy.js';
import type { PolicyNode } from './types.js';

const nodes: PolicyNode[] = [
  {
    id: '1',
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
    tags: ['tag:db'],
    ipv4: '100.64.0.2',
    ipv6: 'fd7a:115c:a1e0::2',
    routableIPs: [],
    approvedRoutes: [],
  },
  {
    id: '3',
    user: 'bob@x.com',
    tags: [],
    ipv4: '100.64.0.3',
    ipv6: 'fd7a:115c:a1e0::3',
    routableIPs: [],
    approvedRoutes: [],
  },
];

const base = `{
  "groups": {"group:eng": ["alice@x.com"]},
  "tagOwners": {"tag:db": []},
  "acls": [{"action": "accept", "src": ["group:eng"], "proto": "tcp", "dst": ["tag:db:5432"]}],
  "ssh": [{"action": "check", "src": ["group:eng"], "dst": ["tag:db"], "users": ["postgres"]}],
`;

test('passing tests return no failures', () => {
  const p = parsePolicy(`${base}
  "tests": [
    {"src": "alice@x.com", "proto": "tcp", "accept": ["tag:db:5432"], "deny": ["tag:db:22"]},
    {"src": "bob@x.com", "deny": ["tag:db:5432"]},
  ],
  "sshTests": [{"src": "alice@x.com", "dst": ["tag:db"], "check": ["postgres"], "deny": ["root"]}],
}`);
  assert.deepEqual(runPolicyTests(p, nodes), []);
});

test('a contradictory accept is reported at the destination that fails', () => {
  const p = parsePolicy(`${base}
  "tests": [
    {"src": "bob@x.com", "accept": ["tag:db:5432"]},
  ],
}`);
  const failures = runPolicyTests(p, nodes);
  assert.deepEqual(failures, [
    {
      line: 8,
      column: 37,
      message: 'test(s) failed: bob@x.com -> tag:db:5432: expected ALLOWED, got DENIED',
    },
  ]);
  const err = policyTestsError(failures);
  assert.equal(err.code, 'invalid_policy');
  assert.match(err.message, /^8:37: test\(s\) failed: /);
});

test('a contradictory deny, a protocol mismatch and an unknown source', () => {
  const p = parsePolicy(`${base}
  "tests": [
    {"src": "group:eng", "deny": ["tag:db:5432"]},
    {"src": "alice@x.com", "proto": "udp", "accept": ["tag:db:5432"]},
    {"src": "carol@x.com", "accept": ["tag:db:5432"]},
  ],
}`);
  assert.deepEqual(
    runPolicyTests(p, nodes).map((f) => `${f.line}:${f.column}: ${f.message}`),
    [
      '8:35: test(s) failed: group:eng -> tag:db:5432: expected DENIED, got ALLOWED',
      '9:55: test(s) failed: alice@x.com -> tag:db:5432 (udp): expected ALLOWED, got DENIED',
      '10:13: test(s) failed: carol@x.com: source "carol@x.com" resolved to no IP addresses',
    ],
  );
});

test('sshTests: accept through a check rule is still allowed; check and deny assertions fail', () => {
  const p = parsePolicy(`${base}
  "sshTests": [
    {"src": "alice@x.com", "dst": ["tag:db"], "accept": ["postgres"], "deny": ["postgres"], "check": ["root"]},
    {"src": "bob@x.com", "dst": ["autogroup:self"], "accept": ["root"]},
  ],
}`);
  const engine = new PolicyEngine(p, { nodes });
  assert.deepEqual(
    runPolicyTests(p, engine).map((f) => `${f.line}:${f.column}: ${f.message}`),
    [
      '8:80: test(s) failed: alice@x.com/postgres -> 2: expected DENIED, got ALLOWED',
      '8:103: test(s) failed: alice@x.com/root -> 2: expected ALLOWED via check, got DENIED',
      '9:64: test(s) failed: bob@x.com/root -> 3: expected ALLOWED, got DENIED',
    ],
  );
});
