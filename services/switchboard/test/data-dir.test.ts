/**
 * `serve` keeps DATA_DIR private: a missing one is created 0700, a looser existing one is tightened
 * to 0700 with one warning, and the admin socket and Noise key inside are 0600 when `serve` returns.
 * (The socket's mode from the moment it exists is tested with the admin server in services/identity.)
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { capturingLogger, type LogLine } from '@switchboard/testing';
import { serve } from '../src/index.js';
import { ensurePrivateDataDir } from '../src/assemble.js';

const mode = (p: string): number => statSync(p).mode & 0o777;

describe('DATA_DIR permissions', () => {
  const root = mkdtempSync(join(tmpdir(), 'sb-datadir-'));
  const previousUmask = process.umask(0o022);
  after(() => {
    process.umask(previousUmask);
    rmSync(root, { recursive: true, force: true });
  });

  async function start(dataDir: string, lines: LogLine[]): Promise<() => Promise<void>> {
    const srv = await serve({
      inMemory: true,
      logger: capturingLogger(lines),
      env: { LISTEN_ADDR: '127.0.0.1:0', STUN_PORT: '0', DATA_DIR: dataDir, LOG_LEVEL: 'silent' },
    });
    return () => srv.stop();
  }

  test('an existing 0755 DATA_DIR becomes 0700 with one warning; socket and key are 0600', async () => {
    const dataDir = join(root, 'loose');
    mkdirSync(dataDir, { mode: 0o755 });
    chmodSync(dataDir, 0o755);
    const lines: LogLine[] = [];
    const stop = await start(dataDir, lines);
    try {
      assert.equal(mode(dataDir), 0o700);
      assert.equal(mode(join(dataDir, 'admin.sock')), 0o600);
      assert.ok(statSync(join(dataDir, 'admin.sock')).isSocket());
      assert.equal(mode(join(dataDir, 'noise.key')), 0o600);
      const warnings = lines.filter(
        (l) => l.level === 'warn' && l.msg.includes('DATA_DIR was open to other users'),
      );
      assert.equal(warnings.length, 1);
      assert.equal(warnings[0]!.fields.previousMode, '0755');
      assert.equal(warnings[0]!.fields.dir, dataDir);
    } finally {
      await stop();
    }
  });

  test('a missing DATA_DIR (and its missing parents) is created 0700 without a warning', () => {
    const dataDir = join(root, 'new', 'nested');
    const lines: LogLine[] = [];
    ensurePrivateDataDir(dataDir, capturingLogger(lines));
    assert.equal(mode(dataDir), 0o700);
    assert.equal(mode(join(root, 'new')), 0o700);
    ensurePrivateDataDir(dataDir, capturingLogger(lines));
    assert.deepEqual(lines, [], 'nothing to warn about, twice');
  });

  test('a DATA_DIR that is a file is refused with a message naming it', () => {
    const file = join(root, 'file');
    writeFileSync(file, '');
    assert.throws(
      () => ensurePrivateDataDir(file, capturingLogger([])),
      /DATA_DIR: .*file exists and is not a directory/,
    );
  });
});
