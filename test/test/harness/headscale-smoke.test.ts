/**
 * Self-check of the real-client harness against real Headscale (a stand-in control server): three
 * unmodified clients (two newest, one oldest) join, see each other, and ping every pair. Skipped
 * unless SWITCHBOARD_HARNESS_HEADSCALE=1, since it tests the harness, not Switchboard. Needs root,
 * the clients from scripts/install-tailscale.sh and headscale in the cache (see headscale.ts).
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import {
  Harness,
  assertNoForeignTraffic,
  down,
  exec,
  logout,
  notYet,
  spawnIn,
  waitFor,
  peersOf,
  ping,
  startHeadscale,
  status,
  ip,
  type Headscale,
  type TailscaleNode,
} from '../../src/harness/index.js';

const enabled = process.env.SWITCHBOARD_HARNESS_HEADSCALE === '1';

void describe(
  'harness self-check against real headscale',
  {
    skip: enabled ? false : 'set SWITCHBOARD_HARNESS_HEADSCALE=1 to run the harness self-check',
    timeout: 300_000,
  },
  () => {
    let h: Harness | undefined;
    let hs: Headscale;
    const nodes: TailscaleNode[] = [];

    before(async () => {
      h = await Harness.create();
      try {
        hs = await startHeadscale(h);
      } catch (err) {
        h.markFailed('before');
        throw err;
      }
    });

    afterEach((t) => h?.noteTestResult(t));

    after(async () => {
      await h?.cleanup();
    });

    void it('three nodes (two newest, one oldest) join', async () => {
      const harness = h!;
      const user = await hs.createUser('smoke');
      const authKey = await hs.createPreAuthKey(user, { reusable: true });
      const plan = [
        { name: 'new1', version: 'newest' },
        { name: 'new2', version: 'newest' },
        { name: 'old1', version: 'oldest' },
      ] as const;
      for (const p of plan) {
        const t0 = Date.now();
        nodes.push(await harness.startNode({ name: p.name, version: p.version, authKey }));
        console.log(`# join ${p.name} (${nodes.at(-1)!.version}): ${Date.now() - t0} ms`);
      }
      for (const n of nodes) assert.match(await ip(n), /^100\.64\./);
    });

    void it('each node lists the other two as peers', async () => {
      assert.equal(nodes.length, 3);
      for (const n of nodes) {
        const st = await status(n);
        assert.equal(st.BackendState, 'Running', `${n.name} BackendState`);
        const peerNames = peersOf(st)
          .map((p) => p.HostName)
          .sort();
        const others = nodes
          .filter((o) => o !== n)
          .map((o) => o.name)
          .sort();
        assert.deepEqual(peerNames, others, `peers of ${n.name}`);
      }
    });

    void it('tailscale ping succeeds between every pair', async () => {
      for (const a of nodes) {
        for (const b of nodes) {
          if (a === b) continue;
          const t0 = Date.now();
          const r = await ping(a, await ip(b), { timeoutS: 60 });
          console.log(
            `# ping ${a.name} -> ${b.name}: via ${r.path} in ${r.latencyMs} ms (${Date.now() - t0} ms, ${r.attempts} tries)`,
          );
        }
      }
    });

    void it('every node picked the local DERP region, and a node without direct UDP is relayed by it', async () => {
      for (const n of nodes) assert.equal((await status(n)).Self.Relay, 'sbh', `home DERP of ${n.name}`);
      const user = await hs.createUser('relay');
      const authKey = await hs.createPreAuthKey(user);
      const relayed = await h!.startNode({
        name: 'relayed',
        authKey,
        env: { TS_DEBUG_NEVER_DIRECT_UDP: '1' },
      });
      for (const target of nodes) {
        const r = await ping(relayed, await ip(target), { timeoutS: 60 });
        assert.equal(r.via, 'derp', `relayed -> ${target.name}: ${r.output}`);
        console.log(`# ping relayed -> ${target.name}: via ${r.path} in ${r.latencyMs} ms`);
      }
    });

    void it('TCP crosses the tailnet over the real TUN devices (exec, spawnIn)', async () => {
      const [a, b] = [nodes[0]!, nodes[2]!];
      const server = spawnIn(b, 'echo-server', [
        process.execPath,
        '-e',
        "require('node:net').createServer((s) => s.pipe(s)).listen(8080, '0.0.0.0', () => console.log('listening'))",
      ]);
      await waitFor(() => server.logTail().includes('listening'), { what: 'echo server to listen' });
      const target = await ip(b);
      const r = await exec(a, [
        process.execPath,
        '-e',
        `const s = require('node:net').connect(8080, '${target}', () => s.end('hello over the tailnet'));` +
          "s.on('data', (d) => process.stdout.write(d)); setTimeout(() => process.exit(3), 10000).unref();",
      ]);
      assert.equal(r.stdout, 'hello over the tailnet');
    });

    void it('down stops a node and logout sends it back to NeedsLogin', async () => {
      const [a, b] = [nodes[1]!, nodes[2]!];
      await down(b);
      await waitFor(
        async () =>
          (await status(b)).BackendState === 'Stopped' ? true : notYet((await status(b)).BackendState),
        {
          what: `${b.name} Stopped`,
        },
      );
      await logout(a);
      await waitFor(
        async () =>
          (await status(a)).BackendState === 'NeedsLogin' ? true : notYet((await status(a)).BackendState),
        {
          what: `${a.name} NeedsLogin`,
        },
      );
    });

    void it('nothing talked to or could route outside the harness network', async () => {
      const report = await assertNoForeignTraffic(h!);
      assert.ok(report.socketsChecked > 0);
    });
  },
);
