/**
 * Real tailscale clients against `switchboard serve` (one process, embedded PGlite, in-process bus).
 */
import { test } from 'node:test';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { serve } from '@switchboard/switchboard';
import { Harness, assertNoForeignTraffic } from '../../src/harness/harness.js';
import { runSpineScenario } from '../../src/scenarios/spine-scenario.js';

test(
  'real clients join a one-process Switchboard, see and ping each other, lose deleted peers',
  { timeout: 300_000 },
  async (t) => {
    const h = await Harness.create();
    let failed = true;
    try {
      const dataDir = mkdtempSync(join(h.runDir, 'sb-'));
      const port = await h.freePort();
      const srv = await serve({
        inMemory: true,
        env: {
          LISTEN_ADDR: `${h.bridgeIp}:${port}`,
          DATA_DIR: dataDir,
          DERP_MAP_PATH: await h.writeDerpMap(),
          DISABLE_CAPTIVE_PORTAL_DETECTION: 'true',
          LOG_LEVEL: process.env.TEST_LOG ? 'debug' : 'warn',
        },
      });
      try {
        const r = await runSpineScenario({
          harness: h,
          admin: { socketPath: srv.adminSocket },
          controlUrls: [h.urlFor(port)],
          log: (m) => t.diagnostic(m),
        });
        t.diagnostic(`delete propagation ${r.deletePropagationMs} ms`);
        await assertNoForeignTraffic(h);
        failed = false;
      } finally {
        await srv.stop();
      }
    } finally {
      await h.cleanup({ failed });
    }
  },
);
