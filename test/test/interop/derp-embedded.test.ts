/**
 * Real clients relayed by Switchboard's own DERP: `switchboard serve` with no DERP configuration,
 * stock tailscaled (newest and oldest) with no DERP debug variables and direct UDP between them
 * dropped. Then a node deleted while connected is cut off the relay at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { adminCall, serve } from '@switchboard/switchboard';
import { freeUdpPort } from '../../src/harness/derp.js';
import { runDerpScenario } from '../../src/scenarios/derp-scenario.js';
import { waitFor } from '../../src/harness/wait.js';

test(
  'two stock clients with direct UDP dropped reach each other through the embedded relay',
  { timeout: 400_000 },
  async (t) => {
    const { Harness } = await import('../../src/harness/harness.js');
    const h = await Harness.create({ derp: false });
    let failed = true;
    try {
      const port = await h.freePort();
      const srv = await serve({
        inMemory: true,
        env: {
          LISTEN_ADDR: `${h.bridgeIp}:${port}`,
          SERVER_URL: h.urlFor(port),
          STUN_PORT: String(await freeUdpPort(h.bridgeIp)),
          DATA_DIR: mkdtempSync(join(h.runDir, 'sb-')),
          DISABLE_CAPTIVE_PORTAL_DETECTION: 'true',
          LOG_LEVEL: process.env.TEST_LOG ? 'debug' : 'warn',
        },
      });
      try {
        const admin = { socketPath: srv.adminSocket };
        const { nodes } = await runDerpScenario({
          harness: h,
          admin,
          controlUrls: [h.urlFor(port), h.urlFor(port)],
          regionCode: 'switchboard',
          log: (m) => t.diagnostic(m),
        });
        const relay = srv.fanout.derp!.relay;
        assert.equal(relay.clientCount, 2, 'both clients are connected to our relay');
        const victim = nodes[1]!;
        const id = [...srv.fanout.model.nodes.values()].find((n) => n.hostname === victim.name)!.id;
        const revokedBefore = relay.stats.revoked;
        await adminCall(admin, 'DELETE', `/api/v1/nodes/${id}`);
        await waitFor(() => relay.stats.revoked > revokedBefore && relay.clientCount === 1, {
          what: 'the deleted node to be cut off the relay',
          timeoutMs: 3_000,
        });
        await waitFor(() => relay.stats.refused.unknown_node > 0, {
          what: "the deleted node's reconnect to be refused by the relay",
          timeoutMs: 30_000,
        });
        failed = false;
      } finally {
        await srv.stop();
      }
    } finally {
      await h.cleanup({ failed });
    }
  },
);
