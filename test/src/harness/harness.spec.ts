/** Pure parts of the real-client harness: traffic-guard parsing, waitFor, DERP map, STUN bytes, names. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildDerpMap, stunBindingRequest } from './derp.js';
import { formatArgv } from './exec.js';
import { allowedPeers, isAllowedPeer, parseSs, peerAddress } from './guard.js';
import { headscaleDerpYaml } from './headscale.js';
import { newRunId, runIdOf } from './topology.js';
import { GiveUp, WaitTimeoutError, notYet, waitFor } from './wait.js';

void describe('traffic guard', () => {
  const allowed = allowedPeers('10.213.57.0/24');

  void it('extracts peer addresses from ss columns', () => {
    assert.equal(peerAddress('10.213.57.1:443'), '10.213.57.1');
    assert.equal(peerAddress('[fd7a:115c:a1e0::1]:41641'), 'fd7a:115c:a1e0::1');
    assert.equal(peerAddress('[fe80::1%eth0]:5353'), 'fe80::1');
    assert.equal(peerAddress('[::ffff:10.213.57.10]:3340'), '10.213.57.10');
    assert.equal(peerAddress('0.0.0.0:*'), undefined);
    assert.equal(peerAddress('[::]:*'), undefined);
    assert.equal(peerAddress('*:*'), undefined);
  });

  void it('allows loopback, the run subnet, link-local and tailnet ranges only', () => {
    for (const ok of [
      '127.0.0.1',
      '10.213.57.200',
      '100.64.0.1',
      '100.127.255.254',
      '::1',
      'fd7a:115c:a1e0::5',
      'fe80::1',
    ]) {
      assert.ok(isAllowedPeer(ok, allowed), ok);
    }
    for (const bad of [
      '10.213.58.1',
      '192.0.2.1',
      '8.8.8.8',
      '100.128.0.1',
      '2001:db8::1',
      'fd7a:115c:a1e1::1',
      'x',
    ]) {
      assert.ok(!isAllowedPeer(bad, allowed), bad);
    }
  });

  void it('parses ss -Htunap rows', () => {
    const rows = parseSs(
      'udp   UNCONN 0 0 0.0.0.0:41641 0.0.0.0:* users:(("tailscaled",pid=12,fd=9))\n' +
        'tcp   ESTAB  0 0 10.213.57.10:51234 10.213.57.1:3340 users:(("tailscaled",pid=12,fd=20))\n',
    );
    assert.equal(rows.length, 2);
    assert.deepEqual(rows[1], {
      proto: 'tcp',
      local: '10.213.57.10:51234',
      peer: '10.213.57.1:3340',
      process: 'users:(("tailscaled",pid=12,fd=20))',
    });
  });
});

void describe('waitFor', () => {
  void it('resolves with the first truthy value', async () => {
    let n = 0;
    const v = await waitFor(() => (++n >= 3 ? { n } : notYet(n)), { what: 'three', intervalMs: 1 });
    assert.deepEqual(v, { n: 3 });
  });

  void it('names what was awaited and the last observation on timeout', async () => {
    await assert.rejects(
      waitFor(() => notYet({ state: 'NeedsLogin' }), { what: 'n1 Running', timeoutMs: 30, intervalMs: 5 }),
      (err: unknown) =>
        err instanceof WaitTimeoutError &&
        /waiting for n1 Running; last observed: \{ state: 'NeedsLogin' \}/.test(err.message),
    );
  });

  void it('reports the last error, and stops at once on GiveUp', async () => {
    await assert.rejects(
      waitFor(
        () => {
          throw new Error('connection refused');
        },
        { what: 'x', timeoutMs: 20, intervalMs: 5 },
      ),
      /last observed: 'Error: connection refused'/,
    );
    const t0 = Date.now();
    await assert.rejects(
      waitFor(
        () => {
          throw new GiveUp('process died');
        },
        { what: 'y', timeoutMs: 5_000 },
      ),
      /gave up waiting for y: process died/,
    );
    assert.ok(Date.now() - t0 < 1_000);
  });
});

void describe('DERP map', () => {
  const map = buildDerpMap({ host: '10.213.57.1', derpPort: 40001, stunPort: 40002 });

  void it('is one region 900 node with explicit ports and no IPv6', () => {
    assert.deepEqual(Object.keys(map.Regions), ['900']);
    const node = map.Regions['900']?.Nodes[0];
    assert.equal(node?.HostName, '10.213.57.1');
    assert.equal(node?.IPv4, '10.213.57.1');
    assert.equal(node?.IPv6, 'none');
    assert.equal(node?.DERPPort, 40001);
    assert.equal(node?.STUNPort, 40002);
  });

  void it('renders headscale YAML with integer region keys and lower-cased field names', () => {
    const yaml = headscaleDerpYaml(map);
    assert.match(yaml, /^regions:\n {2}900:\n {4}regionid: 900\n/);
    assert.match(yaml, /\n {6}- name: "900a"\n {8}regionid: 900\n/);
    assert.match(yaml, /\n {8}stunport: 40002\n {8}derpport: 40001\n/);
    assert.match(yaml, /\nomitdefaultregions: true\n$/);
  });
});

void describe('STUN binding request', () => {
  void it('matches tailscale.com/net/stun.Request byte for byte', () => {
    const tx = Uint8Array.from({ length: 12 }, (_, i) => i + 1);
    // hex of stun.Request(TxID{1..12}) printed by tailscale v1.104.5's net/stun.
    assert.equal(
      stunBindingRequest(tx).toString('hex'),
      '000100142112a4420102030405060708090a0b0c802200087461696c6e6f646580280004b32c370f',
    );
  });
});

void describe('names', () => {
  void it('run ids are 6 characters and recovered from harness names only', () => {
    const id = newRunId();
    assert.match(id, /^[a-z0-9]{6}$/);
    assert.equal(runIdOf(`sbh-${id}`), id);
    assert.equal(runIdOf(`sbh-${id}-node1`), id);
    assert.equal(runIdOf(`sbh-${id}-3`), id);
    assert.equal(runIdOf('sbhx-abcdef'), undefined);
    assert.equal(runIdOf('eth0'), undefined);
    assert.equal(runIdOf('sbh-abcdefg'), undefined);
  });

  void it('formatArgv quotes only what needs it', () => {
    assert.equal(formatArgv(['ip', 'netns', 'exec', 'a b']), 'ip netns exec "a b"');
  });
});
