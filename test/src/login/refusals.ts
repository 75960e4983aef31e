/**
 * The OIDC refusals of the browser-login test: each shows a page naming what went wrong (no stack
 * trace), logs a line with its code and registers nothing (the database is checked).
 */
import assert from 'node:assert/strict';
import type { Page } from 'playwright-core';
import type { LogLine } from '@switchboard/testing';
import { signInAtOp } from './browser.js';

export interface RefusalContext {
  controlUrl: string;
  /** A pending login's URL (its device waits in `tailscale up`). */
  authUrl: string;
  browser: () => Promise<Page>;
  freshPage: () => Promise<Page>;
  lines: LogLine[];
  nodeCount: () => Promise<number>;
  /** Changes the stored nonce of the attempt in progress (the id_token then carries another). */
  tamperNonce: () => Promise<void>;
  log: (m: string) => void;
}

export async function checkRefusals(c: RefusalContext): Promise<void> {
  const before = await c.nodeCount();
  const refusals: { name: string; code: string; run: () => Promise<string> }[] = [
    {
      name: 'state mismatch',
      code: 'oidc_state_mismatch',
      run: async () => {
        const p = await c.browser();
        const r = await p.goto(`${c.controlUrl}/login/callback/op?code=abc&state=forged-state-value`);
        assert.equal(r?.status(), 400);
        return (await p.textContent('main')) ?? '';
      },
    },
    {
      name: 'nonce mismatch',
      code: 'oidc_nonce_mismatch',
      run: async () => {
        const p = await c.freshPage();
        await p.goto(`${c.authUrl}?provider=op`);
        await p.waitForSelector('input[name=login]');
        await c.tamperNonce();
        await signInAtOp(p, 'alice');
        return (await p.textContent('main')) ?? '';
      },
    },
    {
      name: 'group not allowed',
      code: 'group_not_allowed',
      run: async () => {
        const p = await c.freshPage();
        await p.goto(`${c.authUrl}?provider=strict`);
        await signInAtOp(p, 'bob');
        return (await p.textContent('main')) ?? '';
      },
    },
    {
      name: 'domain not allowed',
      code: 'domain_not_allowed',
      run: async () => {
        const p = await c.freshPage();
        await p.goto(`${c.authUrl}?provider=strict`);
        await signInAtOp(p, 'mallory');
        return (await p.textContent('main')) ?? '';
      },
    },
    {
      name: 'MFA required',
      code: 'mfa_required',
      run: async () => {
        const p = await c.freshPage();
        await p.goto(`${c.authUrl}?provider=mfa`);
        await signInAtOp(p, 'alice');
        return (await p.textContent('main')) ?? '';
      },
    },
  ];
  for (const r of refusals) {
    const pageText = await r.run();
    assert.match(pageText, /What went wrong/, `${r.name}: a refusal page`);
    assert.ok(pageText.includes(r.code), `${r.name}: the page names ${r.code}: ${pageText}`);
    assert.ok(!/at .*\.js:\d+/.test(pageText), `${r.name}: no stack trace`);
    assert.ok(
      c.lines.some((l) => l.msg === 'login refused' && l.fields.code === r.code),
      `${r.name}: a log line with code ${r.code}`,
    );
    assert.equal(await c.nodeCount(), before, `${r.name}: nothing registered`);
    c.log(`refused as expected: ${r.name} (${r.code})`);
  }
}
