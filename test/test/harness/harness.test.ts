/**
 * Self-check of the harness machinery without a control server: namespaces have no default route
 * and reach only the bridge, derper answers DERP and STUN, tailscaled starts in a namespace, the
 * traffic guard catches a default route and a trapped proxy request, and a crashed run is swept.
 * Needs root and the clients from scripts/install-tailscale.sh; skipped otherwise.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, afterEach, before, describe, it } from 'node:test';
import {
  Harness,
  assertNoForeignTraffic,
  checkForeignTraffic,
  exec,
  haveClientBinaries,
  status,
  stunProbe,
  sweepLeftovers,
  type TailscaleNode,
} from '../../src/harness/index.js';

/** A node one-liner that connects to host:port and exits 0, or prints the error and exits 1. */
function tcpConnect(host: string, port: number): string {
  return (
    `const s = require('node:net').connect(${port}, ${JSON.stringify(host)}, () => { s.end(); process.exit(0); });` +
    `s.on('error', (e) => { console.error(e.code); process.exit(1); }); setTimeout(() => process.exit(2), 5000);`
  );
}

const runnable = process.getuid?.() === 0 && haveClientBinaries('newest');

void describe(
  'real-client harness machinery',
  {
    skip: runnable ? false : 'needs root and scripts/install-tailscale.sh',
    timeout: 120_000,
  },
  () => {
    let h: Harness;
    let n1: TailscaleNode;

    before(async () => {
      h = await Harness.create();
    });

    afterEach((t) => h?.noteTestResult(t));

    after(async () => {
      await h?.cleanup();
    });

    void it('serves DERP over HTTP and STUN on the bridge address', async () => {
      const derp = h.derp!;
      const res = await fetch(`http://${derp.host}:${derp.derpPort}/derp/probe`);
      assert.equal(res.status, 200);
      assert.ok(await stunProbe(derp.host, derp.stunPort));
      assert.equal(h.derpMap().Regions['900']?.Nodes[0]?.HostName, h.bridgeIp);
    });

    void it('starts tailscaled in a namespace that reaches the bridge and nothing else', async () => {
      n1 = await h.startNode({ name: 'n1' });
      assert.equal((await status(n1)).BackendState, 'NeedsLogin');
      const routes = await exec(n1, ['ip', '-4', 'route', 'show', 'table', 'main']);
      assert.doesNotMatch(routes.stdout, /default/);
      const derp = h.derp!;
      await exec(n1, [process.execPath, '-e', tcpConnect(derp.host, derp.derpPort)]);
      // TEST-NET-3: with no default route the kernel refuses at once, and no packet is sent.
      const outside = await exec(n1, [process.execPath, '-e', tcpConnect('203.0.113.1', 80)], {
        allowFailure: true,
      });
      assert.notEqual(outside.code, 0);
      assert.match(outside.stderr, /ENETUNREACH/);
      await assertNoForeignTraffic(h);
    });

    void it('the guard reports a default route and a trapped proxy request', async () => {
      await exec(n1, ['ip', 'route', 'add', 'default', 'dev', 'eth0']);
      try {
        await exec(n1, ['curl', '-s', '-m', '5', '-x', h.trap.url, 'http://example.invalid/'], {
          allowFailure: true,
        });
        const report = await checkForeignTraffic(h.guardTarget());
        assert.ok(
          report.violations.some((v) => v.includes('default route')),
          report.violations.join('\n'),
        );
        assert.ok(report.violations.some((v) => v.includes('proxy trap: GET http://example.invalid/')));
      } finally {
        await exec(n1, ['ip', 'route', 'del', 'default', 'dev', 'eth0']);
        h.trap.hits.length = 0;
      }
      await assertNoForeignTraffic(h);
    });

    void it('sweeps the namespaces and processes of a run whose owner died', async () => {
      const index = new URL('../../src/harness/index.js', import.meta.url).href;
      const script =
        `const { Harness } = await import(${JSON.stringify(index)});` +
        `const h = await Harness.create({ sweep: false });` +
        `await h.startNode({ name: 'orphan' });` +
        `console.log('READY ' + h.runId + ' ' + h.runDir); setInterval(() => {}, 1000);`;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const ready = await new Promise<string>((resolve, reject) => {
        let out = '';
        const timer = setTimeout(() => reject(new Error(`child not ready: ${out}`)), 30_000);
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /READY (\S+)/.exec(out);
          if (m) {
            clearTimeout(timer);
            resolve(m[1]!);
          }
        });
        child.on('exit', () => reject(new Error(`child exited: ${out}`)));
      });
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('close', resolve));
      assert.ok(existsSync(`/run/netns/sbh-${ready}-orphan`), 'the crashed run left its namespace');
      const swept = await sweepLeftovers();
      assert.ok(swept.includes(ready), `swept ${swept.join(',')}`);
      assert.ok(!existsSync(`/run/netns/sbh-${ready}-orphan`));
      assert.ok(!existsSync(`/etc/netns/sbh-${ready}-orphan`));
      assert.ok(!swept.includes(h.runId), 'a live run is left alone');
      assert.ok(existsSync(`/run/netns/${n1.netns}`));
    });
  },
);
