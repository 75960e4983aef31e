import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { configureLogging, createLogger, maskSecrets } from './logger.js';

function capture(): { lines: Record<string, unknown>[]; restore: () => void } {
  const lines: Record<string, unknown>[] = [];
  configureLogging({ level: 'debug', sink: (l) => lines.push(JSON.parse(l) as Record<string, unknown>) });
  return { lines, restore: () => configureLogging({ level: 'silent', sink: () => undefined }) };
}

describe('logger (pino)', () => {
  test('one JSON object per line with level word, ISO time, logger name, fields and msg', () => {
    const { lines, restore } = capture();
    const log = createLogger('svc', { replica: 'r1' }).child('edge', { nodeId: 'n1' });
    log.info('map stream opened', {
      streams: 3,
      big: 10n,
      err: Object.assign(new Error('x'), { code: 'c' }),
    });
    restore();
    const l = lines[0]!;
    assert.equal(l.level, 'info');
    assert.equal(l.logger, 'svc.edge');
    assert.equal(l.replica, 'r1');
    assert.equal(l.nodeId, 'n1');
    assert.equal(l.msg, 'map stream opened');
    assert.equal(l.big, '10');
    assert.deepEqual(l.err, { message: 'x', name: 'Error', code: 'c' });
    assert.match(String(l.time), /^\d{4}-\d\d-\d\dT/);
  });

  test('the level filters, also for loggers made before the change', () => {
    const log = createLogger('t');
    const { lines, restore } = capture();
    configureLogging({ level: 'warn' });
    log.info('hidden');
    log.warn('shown');
    assert.equal(log.isLevelEnabled('info'), false);
    restore();
    assert.deepEqual(
      lines.map((l) => l.msg),
      ['shown'],
    );
  });

  test('credential fields are redacted and secret-shaped strings masked', () => {
    const { lines, restore } = capture();
    const noise = 'privkey:' + 'ab'.repeat(32);
    const preauth = 'sbkey-0123456789abcdef-' + 'S'.repeat(32);
    const api = 'sbapi-0123456789abcdef-' + 'T'.repeat(32);
    createLogger('t').warn(`refused ${preauth}`, {
      authKey: preauth,
      req: { authorization: `Bearer ${api}` },
      note: `key ${noise}`,
      nested: { list: [api] },
    });
    restore();
    const text = JSON.stringify(lines);
    for (const s of [noise, preauth, api, 'S'.repeat(32), 'T'.repeat(32), 'ab'.repeat(32)])
      assert.ok(!text.includes(s), `leaked ${s}`);
    assert.match(text, /sbkey-0123456789abcdef-\[redacted\]/);
    assert.equal(lines[0]!.authKey, '[redacted]');
  });

  test('maskSecrets leaves ordinary text alone', () => {
    assert.equal(maskSecrets('node 12 key nodekey:abcd expired'), 'node 12 key nodekey:abcd expired');
    assert.equal(maskSecrets('sbapi-0123abcd'), 'sbapi-0123abcd');
  });
});
