/**
 * Browser login with the split services (identity, key-registry, policy-compiler and two fanout
 * replicas as their own processes over NATS, Postgres and Redis). A real `tailscale up` without a
 * key reaches fanout replica A through a TCP balancer and gets its login URL there; replica A is
 * then stopped, so the client's held follow-up lands on replica B; the person signs in with
 * headless Chromium at a real OpenID provider (identity's login pages on LOGIN_LISTEN_ADDR), and
 * B answers the follow-up: the client reaches Running as that user.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { NATS_URL, REDIS_URL, scratchDatabase } from '@switchboard/testing';
import { Harness } from '../../src/harness/harness.js';
import { status } from '../../src/harness/node.js';
import { notYet, waitFor } from '../../src/harness/wait.js';
import { launchBrowser, loginInBrowser } from '../../src/login/browser.js';
import { interactiveUp, PROVIDER_IDS, writeLoginConfig } from '../../src/login/login-scenario.js';
import { startOidcProvider } from '../../src/login/oidc-op.js';
import { startBalancer } from '../../src/login/tcp-balancer.js';

const MAIN = fileURLToPath(new URL('../../../../services/switchboard/dist/src/main.js', import.meta.url));

test('browser login across fanout replicas of the split services', { timeout: 420_000 }, async (t) => {
  const h = await Harness.create();
  const db = await scratchDatabase('sblogin');
  let failed = true;
  try {
    const dir = mkdtempSync(join(h.runDir, 'svc-'));
    const adminSocket = join(dir, 'admin.sock');
    const [portA, portB, lbPort, loginPort] = [
      await h.freePort(),
      await h.freePort(),
      await h.freePort(),
      await h.freePort(),
    ];
    const publicUrl = `http://127.0.0.1:${loginPort}`;
    const op = await startOidcProvider({
      redirectUris: PROVIDER_IDS.map((id) => `${publicUrl}/login/callback/${id}`),
      accounts: { carol: { email: 'carol@example.com', name: 'Carol', groups: ['eng'] } },
    });
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
    start('identity', ['service', 'identity'], {
      ADMIN_SOCKET: adminSocket,
      PUBLIC_URL: publicUrl,
      LOGIN_LISTEN_ADDR: `127.0.0.1:${loginPort}`,
      LOGIN_CONFIG_FILE: writeLoginConfig(h.runDir, op),
    });
    start('key-registry', ['service', 'key-registry'], { PUBLIC_URL: publicUrl });
    start('policy-compiler', ['service', 'policy-compiler']);
    const fanoutEnv = {
      NOISE_KEY_FILE: join(dir, 'noise.key'),
      DERP_MAP_PATH: await h.writeDerpMap(),
      DISABLE_CAPTIVE_PORTAL_DETECTION: 'true',
    };
    const fanoutA = start('fanout-a', ['service', 'netmap-fanout'], {
      ...fanoutEnv,
      LISTEN_ADDR: `${h.bridgeIp}:${portA}`,
      REPLICA_ID: 'a',
    });
    start('fanout-b', ['service', 'netmap-fanout'], {
      ...fanoutEnv,
      LISTEN_ADDR: `${h.bridgeIp}:${portB}`,
      REPLICA_ID: 'b',
    });
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
    const lb = await startBalancer(h.bridgeIp, lbPort, [
      { host: h.bridgeIp, port: portA },
      { host: h.bridgeIp, port: portB },
    ]);
    const browser = await launchBrowser();
    try {
      const controlUrl = h.urlFor(lbPort);
      lb.pin(portA);
      const carol = await h.startNode({ name: 'carol', loginServer: controlUrl });
      const up = await interactiveUp(carol, controlUrl);
      assert.ok(up.authUrl.startsWith(`${publicUrl}/login/`), up.authUrl);
      assert.ok((lb.counts.get(portA) ?? 0) > 0, 'the login started through replica A');
      const beforeB = lb.counts.get(portB) ?? 0;
      assert.equal(beforeB, 0, 'nothing reached replica B yet');
      lb.pin(portB);
      await fanoutA.stop();
      // The client's held follow-up fails with A and comes back through the balancer to B.
      await waitFor(
        () => ((lb.counts.get(portB) ?? 0) > beforeB ? true : notYet(Object.fromEntries(lb.counts))),
        {
          what: 'the client to reconnect to replica B',
          timeoutMs: 60_000,
        },
      );
      const page = await browser.newPage();
      const text = await loginInBrowser(page, `${up.authUrl}?provider=op`, 'carol');
      assert.match(text, /carol@example\.com/);
      const r = await up.done;
      assert.equal(r.code, 0, r.stderr);
      const st = await status(carol);
      assert.equal(st.BackendState, 'Running');
      assert.equal(st.User?.[String(st.Self.UserID)]?.LoginName, 'carol@example.com');
      t.diagnostic(`connections: ${JSON.stringify(Object.fromEntries(lb.counts))}`);
      failed = false;
    } finally {
      await browser.close();
      await lb.stop();
      await op.stop();
    }
  } finally {
    await h.cleanup({ failed });
    await db.drop();
  }
});
