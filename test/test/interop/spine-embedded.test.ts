/**
 * Real tailscale clients against `switchboard serve` (one process, embedded PGlite, in-process bus).
 */
import { test } from 'node:test';
import { assertNoForeignTraffic } from '../../src/harness/harness.js';
import { withEmbeddedServer, withRealClients } from '../../src/scenarios/embedded-server.js';
import { runSpineScenario } from '../../src/scenarios/spine-scenario.js';

test(
  'real clients join a one-process Switchboard, see and ping each other, lose deleted peers',
  { timeout: 300_000 },
  (t) =>
    withRealClients((h) =>
      withEmbeddedServer(h, async (srv, url) => {
        const r = await runSpineScenario({
          harness: h,
          admin: { socketPath: srv.adminSocket },
          controlUrls: [url],
          log: (m) => t.diagnostic(m),
        });
        t.diagnostic(`delete propagation ${r.deletePropagationMs} ms`);
        await assertNoForeignTraffic(h);
      }),
    ),
);
