/**
 * Runs `switchboard serve` on embedded defaults for a real-client test: listening on the harness
 * bridge, with the harness's DERP map, captive-portal probes off, stopped after the test body.
 */
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { serve, type RunningServer } from '@switchboard/switchboard';
import type { Harness } from '../harness/harness.js';

export async function withEmbeddedServer<T>(
  h: Harness,
  fn: (srv: RunningServer, controlUrl: string) => Promise<T>,
  /** Extra server settings (e.g. LEGACY_PROTOCOL). */
  extraEnv: Record<string, string> = {},
): Promise<T> {
  const port = await h.freePort();
  const srv = await serve({
    inMemory: true,
    env: {
      LISTEN_ADDR: `${h.bridgeIp}:${port}`,
      DATA_DIR: mkdtempSync(join(h.runDir, 'sb-')),
      DERP_MAP_PATH: await h.writeDerpMap(),
      DISABLE_CAPTIVE_PORTAL_DETECTION: 'true',
      LOG_LEVEL: process.env.TEST_LOG ? 'debug' : 'warn',
      ...extraEnv,
    },
  });
  try {
    return await fn(srv, h.urlFor(port));
  } finally {
    await srv.stop();
  }
}

/** Creates a harness, runs the body, cleans up (keeping the run's logs when the body failed). */
export async function withRealClients(fn: (h: Harness) => Promise<void>): Promise<void> {
  const { Harness: H } = await import('../harness/harness.js');
  const h = await H.create();
  let failed = true;
  try {
    await fn(h);
    failed = false;
  } finally {
    await h.cleanup({ failed });
  }
}
