/**
 * Browser login end to end with real parts only: a real `tailscale up` without a key prints a
 * URL, headless Chromium signs in at a real OpenID provider (node-oidc-provider), confirms the
 * device, and the client reaches Running as that user. A group that exists only at the IdP
 * admits that user's node through a policy rule; another user's node is refused. Refusals
 * (state and nonce mismatch, domain/group not allowed, MFA absent) show a page, log a line and
 * register nothing. Disabling a user removes their node from every connected peer.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { capturingLogger, type LogLine } from '@switchboard/testing';
import { runAdminCli, serve } from '@switchboard/switchboard';
import { withRealClients } from '../../src/scenarios/embedded-server.js';
import { ip, peersOf, spawnIn, status } from '../../src/harness/node.js';
import { notYet, waitFor } from '../../src/harness/wait.js';
import { launchBrowser, loginInBrowser } from '../../src/login/browser.js';
import { checkRefusals } from '../../src/login/refusals.js';
import { startOidcProvider } from '../../src/login/oidc-op.js';
import {
  interactiveUp,
  LISTENER,
  POLICY,
  PROVIDER_IDS,
  tcpOk,
  writeLoginConfig,
} from '../../src/login/login-scenario.js';

test('browser login (OIDC) with real clients and Chromium, one process', { timeout: 600_000 }, (t) =>
  withRealClients(async (h) => {
    const port = await h.freePort();
    const controlUrl = h.urlFor(port);
    const op = await startOidcProvider({
      redirectUris: PROVIDER_IDS.map((id) => `${controlUrl}/login/callback/${id}`),
      accounts: {
        alice: { email: 'alice@example.com', name: 'Alice Example', groups: ['eng'] },
        bob: { email: 'bob@example.com', name: 'Bob Example', groups: ['ops'] },
        mallory: { email: 'mallory@evil.test', name: 'Mallory', groups: ['eng'] },
      },
    });
    const lines: LogLine[] = [];
    const logger = capturingLogger(lines, {}, { minLevel: 'info' });
    const srv = await serve({
      inMemory: true,
      logger,
      env: {
        LISTEN_ADDR: `${h.bridgeIp}:${port}`,
        DATA_DIR: mkdtempSync(join(h.runDir, 'sb-')),
        DERP_MAP_PATH: await h.writeDerpMap(),
        DISABLE_CAPTIVE_PORTAL_DETECTION: 'true',
        LOG_LEVEL: 'warn',
        LOGIN_CONFIG_FILE: writeLoginConfig(h.runDir, op),
      },
    });
    const browser = await launchBrowser();
    const extra: { close(): Promise<void> }[] = [];
    /** A page in a new browser profile: no session at the OP yet. */
    const freshPage = async () => {
      const b = await launchBrowser();
      extra.push(b);
      return b.newPage();
    };
    try {
      const cli = async (...args: string[]) => {
        const out: string[] = [];
        const code = await runAdminCli([...args, '--socket', srv.adminSocket], {
          out: (s) => out.push(s),
          err: (s) => out.push(s),
          env: {},
        });
        assert.equal(code, 0, out.join(''));
        return out.join('');
      };
      const nodeCount = async () =>
        Number(
          (await srv.db.query<{ n: string }>('SELECT count(*) AS n FROM key_registry.nodes')).rows[0]!.n,
        );

      // A server node (pre-auth key, tag:server) listening on tcp:22, and the policy naming an IdP-only group.
      await cli('users', 'create', 'svc');
      const pfile = join(h.runDir, 'policy.hujson');
      writeFileSync(pfile, POLICY);
      await cli('policy', 'set', pfile);
      const key = (await cli('preauthkeys', 'create', '--user', 'svc', '--tags', 'tag:server')).trim();
      const server = await h.startNode({ name: 'srv', authKey: key, loginServer: controlUrl });
      spawnIn(server, 'listener', [process.execPath, '-e', LISTENER]);
      const srvIp = await ip(server);

      // alice: `tailscale up` without a key, signs in with the browser, confirms.
      const alice = await h.startNode({ name: 'alice', loginServer: controlUrl });
      const aliceUp = await interactiveUp(alice, controlUrl);
      assert.match(aliceUp.authUrl, new RegExp(`^${controlUrl}/login/[A-Za-z0-9_-]+$`));
      const page = await browser.newPage();
      const text = await loginInBrowser(page, `${aliceUp.authUrl}?provider=op`, 'alice');
      assert.match(text, /alice@example\.com/);
      const upResult = await aliceUp.done;
      assert.equal(upResult.code, 0, upResult.stderr);
      assert.match(upResult.stderr, /To authenticate, visit:\s+http/);
      assert.ok(upResult.stderr.includes(aliceUp.authUrl), 'tailscale up printed the login URL');
      const st = await waitFor(
        async () => {
          const s = await status(alice);
          return s.BackendState === 'Running' ? s : notYet(s.BackendState);
        },
        { what: 'alice Running', timeoutMs: 30_000 },
      );
      assert.equal(st.User?.[String(st.Self.UserID)]?.LoginName, 'alice@example.com');
      const plain = await alice.cli(['status']);
      assert.match(plain.stdout, /alice@/, 'tailscale status shows the login name');
      // Reloading the confirmation is harmless: it lands on the done page.
      await page.reload();
      assert.match((await page.textContent('h1')) ?? '', /Device added/);

      // bob: same flow, not in the IdP group.
      const bob = await h.startNode({ name: 'bob', loginServer: controlUrl });
      const bobUp = await interactiveUp(bob, controlUrl);
      const b2 = await launchBrowser();
      extra.push(b2);
      const page2 = await b2.newPage();
      await loginInBrowser(page2, `${bobUp.authUrl}?provider=op`, 'bob');
      assert.equal((await bobUp.done).code, 0);

      const users = await cli('users', 'list', '--output', 'json');
      assert.match(users, /"groups":\s*\[\s*"idp-eng"\s*\]/);

      await waitFor(async () => ((await tcpOk(alice, srvIp)) ? true : notYet('no connection')), {
        what: 'alice (IdP group eng) to reach the server on tcp:22',
        timeoutMs: 30_000,
      });
      assert.equal(await tcpOk(bob, srvIp), false, 'bob (not in the IdP group) must not reach the server');

      // Refusals, each with a page, a log line and no node registered.
      const eve = await h.startNode({ name: 'eve', loginServer: controlUrl });
      const eveUp = await interactiveUp(eve, controlUrl, 300);
      await checkRefusals({
        controlUrl,
        authUrl: eveUp.authUrl,
        browser: () => browser.newPage(),
        freshPage,
        lines,
        nodeCount,
        tamperNonce: async () => {
          await srv.db.query(
            `UPDATE identity.oidc_attempts SET nonce = 'not-the-nonce-sent' WHERE used_at IS NULL`,
          );
        },
        log: (m) => t.diagnostic(m),
      });

      // Disabling alice removes her node from the server's peers, live.
      await waitFor(
        async () =>
          peersOf(await status(server)).some((p) => p.HostName === 'alice') ? true : notYet('no alice'),
        { what: 'server to see alice', timeoutMs: 20_000 },
      );
      const t0 = Date.now();
      await cli('users', 'disable', 'alice@example.com');
      await waitFor(
        async () => {
          const srvSees = peersOf(await status(server)).some((p) => p.HostName === 'alice');
          const aliceSees = peersOf(await status(alice)).length;
          return !srvSees && aliceSees === 0 ? true : notYet({ srvSees, aliceSees });
        },
        { what: 'alice to vanish from every peer and lose hers', timeoutMs: 10_000 },
      );
      const ms = Date.now() - t0;
      t.diagnostic(`disable propagated to real clients in ${ms} ms`);
      await eve.cli(['down'], { allowFailure: true });
      void eveUp.done.catch(() => undefined);
    } finally {
      for (const b of extra) await b.close();
      await browser.close();
      await srv.stop();
      await op.stop();
    }
  }),
);
