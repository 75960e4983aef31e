/**
 * The embedded relays of two netmap-fanout replicas mesh (shared DERP_MESH_KEY, peers found through
 * the replicas' announcements on the bus): each replica's map points at its own relay, so a client
 * joined through replica A homes on A's relay and one joined through B on B's, with direct UDP
 * between them dropped; they still ping and talk TCP through the mesh. Then replica B dies and A
 * notices: its mesh link goes down and B's clients are no longer routed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NATS_URL, REDIS_URL, scratchDatabase } from '@switchboard/testing';
import { Harness } from '../../src/harness/harness.js';
import { freeUdpPort } from '../../src/harness/derp.js';
import { waitFor, notYet } from '../../src/harness/wait.js';
import { runDerpScenario } from '../../src/scenarios/derp-scenario.js';

const MAIN = fileURLToPath(new URL('../../../../services/switchboard/dist/src/main.js', import.meta.url));

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

test(
  "clients homed on two replicas' relays reach each other through the mesh",
  { timeout: 420_000 },
  async (t) => {
    const h = await Harness.create({ derp: false });
    const db = await scratchDatabase('sbmesh');
    let failed = true;
    try {
      const dir = mkdtempSync(join(h.runDir, 'mesh-'));
      const adminSocket = join(dir, 'admin.sock');
      const [portA, portB] = [await h.freePort(), await h.freePort()];
      const common = {
        DATABASE_URL: db.url,
        NATS_URL,
        REDIS_URL,
        REDIS_KEY_PREFIX: `sbtest-${h.runId}:`,
        DATA_DIR: dir,
        LOG_LEVEL: 'info',
      };
      const start = (name: string, argv: string[], env: Record<string, string> = {}) =>
        h.startProcess({
          name,
          argv: [process.execPath, '--enable-source-maps', MAIN, ...argv],
          env: h.processEnv({ ...common, ...env }),
        });
      start('identity', ['service', 'identity'], { ADMIN_SOCKET: adminSocket });
      start('key-registry', ['service', 'key-registry']);
      start('policy-compiler', ['service', 'policy-compiler']);
      const meshKey = randomBytes(32).toString('hex');
      const fanout = async (id: string, port: number) =>
        start(`fanout-${id}`, ['service', 'netmap-fanout'], {
          NOISE_KEY_FILE: join(dir, 'noise.key'),
          DISABLE_CAPTIVE_PORTAL_DETECTION: 'true',
          LISTEN_ADDR: `${h.bridgeIp}:${port}`,
          SERVER_URL: h.urlFor(port),
          STUN_PORT: String(await freeUdpPort(h.bridgeIp)),
          DERP_MESH_KEY: meshKey,
          REPLICA_ID: id,
        });
      await fanout('a', portA);
      const procB = await fanout('b', portB);
      for (const port of [portA, portB])
        await waitFor(
          async () => {
            const r = await fetch(`${h.urlFor(port)}/ready`).catch(() => null);
            return r?.status === 200 ? true : notYet(r?.status ?? 'no answer');
          },
          { what: `fanout replica on port ${port} to be ready`, timeoutMs: 60_000, intervalMs: 200 },
        );
      await waitFor(() => (existsSync(adminSocket) ? true : notYet('no socket')), {
        what: 'admin socket',
        timeoutMs: 30_000,
      });
      // Each relay watches the other.
      for (const port of [portA, portB])
        await waitFor(
          async () => {
            const n = await metric(h.urlFor(port), 'switchboard_derp_mesh_watchers');
            return n === 1 ? true : notYet(n);
          },
          { what: `the relay on ${port} to be watched by the other`, timeoutMs: 30_000 },
        );
      await runDerpScenario({
        harness: h,
        admin: { socketPath: adminSocket },
        controlUrls: [h.urlFor(portA), h.urlFor(portB)],
        regionCode: 'switchboard',
        log: (m) => t.diagnostic(m),
      });
      const fwdA = await metric(h.urlFor(portA), 'switchboard_derp_packets_forwarded_out_total');
      const fwdB = await metric(h.urlFor(portB), 'switchboard_derp_packets_forwarded_out_total');
      t.diagnostic(`packets forwarded over the mesh: A→B ${fwdA}, B→A ${fwdB}`);
      assert.ok(fwdA > 0 && fwdB > 0, 'both relays forwarded over the mesh');
      assert.equal(await metric(h.urlFor(portA), 'switchboard_derp_mesh_routes'), 1, "A routes B's client");

      // B dies: A's mesh link breaks and B's client is no longer routed.
      await procB.stop({ graceMs: 0 });
      await waitFor(
        async () => {
          const n = await metric(h.urlFor(portA), 'switchboard_derp_mesh_routes');
          return n === 0 ? true : notYet(n);
        },
        { what: 'replica A to drop the routes through the dead replica', timeoutMs: 10_000 },
      );
      failed = false;
    } finally {
      await h.cleanup({ failed });
      await db.drop();
    }
  },
);
