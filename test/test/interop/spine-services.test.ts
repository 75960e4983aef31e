/**
 * Real tailscale clients against Switchboard split into its services, each its own process over
 * NATS (JetStream), Postgres and Redis, with two netmap-fanout replicas; the clients are spread over
 * both replicas, so deletions and joins must cross replicas through the event log.
 */
import { test } from 'node:test';
import { existsSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { adminCall } from '@switchboard/switchboard';
import { NATS_URL, REDIS_URL, scratchDatabase } from '@switchboard/testing';
import { Harness, assertNoForeignTraffic } from '../../src/harness/harness.js';
import { waitFor, notYet } from '../../src/harness/wait.js';
import { runSpineScenario } from '../../src/scenarios/spine-scenario.js';

const MAIN = fileURLToPath(new URL('../../../../services/switchboard/dist/src/main.js', import.meta.url));

test('real clients across two fanout replicas of the split services', { timeout: 420_000 }, async (t) => {
  const h = await Harness.create();
  const db = await scratchDatabase('sbsvc');
  let failed = true;
  try {
    const dir = mkdtempSync(join(h.runDir, 'svc-'));
    const adminSocket = join(dir, 'admin.sock');
    const derp = await h.writeDerpMap();
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
    const procs = [
      start('identity', ['service', 'identity'], { ADMIN_SOCKET: adminSocket }),
      start('key-registry', ['service', 'key-registry']),
      start('policy-compiler', ['service', 'policy-compiler']),
    ];
    const fanoutEnv = {
      NOISE_KEY_FILE: join(dir, 'noise.key'),
      DERP_MAP_PATH: derp,
      DISABLE_CAPTIVE_PORTAL_DETECTION: 'true',
    };
    procs.push(
      start('fanout-a', ['service', 'netmap-fanout'], {
        ...fanoutEnv,
        LISTEN_ADDR: `${h.bridgeIp}:${portA}`,
        REPLICA_ID: 'a',
      }),
      start('fanout-b', ['service', 'netmap-fanout'], {
        ...fanoutEnv,
        LISTEN_ADDR: `${h.bridgeIp}:${portB}`,
        REPLICA_ID: 'b',
      }),
    );
    for (const port of [portA, portB]) {
      await waitFor(
        async () => {
          const r = await fetch(`${h.urlFor(port)}/ready`).catch(() => null);
          return r?.status === 200 ? true : notYet(r?.status ?? 'no answer');
        },
        { what: `fanout replica on port ${port} to be ready`, timeoutMs: 60_000, intervalMs: 200 },
      );
    }
    await waitFor(() => (existsSync(adminSocket) ? true : notYet('no socket')), {
      what: 'admin socket',
      timeoutMs: 30_000,
    });
    const admin = { socketPath: adminSocket };
    await adminCall(admin, 'GET', '/api/v1/users');
    const r = await runSpineScenario({
      harness: h,
      admin,
      controlUrls: [h.urlFor(portA), h.urlFor(portB)],
      log: (m) => t.diagnostic(m),
    });
    t.diagnostic(`delete propagation across replicas ${r.deletePropagationMs} ms`);
    await assertNoForeignTraffic(h);
    for (const p of procs) if (!p.running) throw new Error(`${p.describe()} before the test ended`);
    failed = false;
  } finally {
    await h.cleanup({ failed });
    await db.drop();
  }
});
