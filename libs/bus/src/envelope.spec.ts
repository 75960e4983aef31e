import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  RemoteError,
  SwitchboardError,
  ValidationError,
  configureLogging,
  createLogger,
} from '@switchboard/common';
import { decodeReply, encodePayload, handleRequest } from './envelope.js';

configureLogging({ level: 'silent' });
const logger = createLogger('envelope-spec');

void describe('encodePayload', () => {
  void it('encodes JSON values and undefined as null', () => {
    assert.equal(encodePayload('s', { a: [1, 'x', null] }), '{"a":[1,"x",null]}');
    assert.equal(encodePayload('s', undefined), 'null');
  });
  void it('refuses BigInt, cycles, functions and oversized payloads naming the subject', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.me = cyclic;
    for (const bad of [1n, cyclic, () => 1, Symbol('x')]) {
      assert.throws(
        () => encodePayload('keyreg.v1.register', bad),
        (err: unknown) => err instanceof ValidationError && err.message.includes('keyreg.v1.register'),
      );
    }
    assert.throws(() => encodePayload('s', 'x'.repeat(100), 50), /over the bus limit of 50 bytes/);
  });
});

void describe('handleRequest', () => {
  const run = (text: string, handler: (p: unknown) => Promise<unknown>) =>
    handleRequest('svc.v1.op', text, handler, logger).then((r) => JSON.parse(r) as unknown);

  void it('wraps results in an ok envelope', async () => {
    assert.deepEqual(await run('{"x":1}', async (p) => p), { ok: true, result: { x: 1 } });
    assert.deepEqual(await run('null', async () => undefined), { ok: true });
  });
  void it('sends a SwitchboardError back with its code, hint and details', async () => {
    const r = await run('1', async () => {
      throw new SwitchboardError('not_found', 'no such node', 'list them', { id: 1 });
    });
    assert.deepEqual(r, {
      ok: false,
      error: { code: 'not_found', message: 'no such node', hint: 'list them', details: { id: 1 } },
    });
  });
  void it('hides other errors behind internal', async () => {
    const r = (await run('1', async () => {
      throw new TypeError('x is undefined');
    })) as { ok: false; error: { code: string; message: string } };
    assert.equal(r.error.code, 'internal');
    assert.ok(!r.error.message.includes('x is undefined'));
  });
  void it('answers bad JSON with invalid_input without calling the handler', async () => {
    let called = false;
    const r = (await run('{nope', async () => (called = true))) as { ok: false; error: { code: string } };
    assert.equal(r.error.code, 'invalid_input');
    assert.equal(called, false);
  });
  void it('answers a reply that cannot be encoded with internal', async () => {
    const r = (await run('1', async () => ({ big: 1n }))) as { ok: false; error: { code: string } };
    assert.equal(r.error.code, 'internal');
  });
  void it('drops unserialisable details rather than the error', async () => {
    const r = (await run('1', async () => {
      throw new SwitchboardError('conflict', 'taken', undefined, { n: 1n });
    })) as { ok: false; error: { code: string; details?: unknown } };
    assert.equal(r.error.code, 'conflict');
    assert.equal(r.error.details, undefined);
  });
});

void describe('decodeReply', () => {
  void it('returns the result or throws a RemoteError with the remote code', () => {
    assert.deepEqual(decodeReply('s', '{"ok":true,"result":[1]}'), [1]);
    assert.equal(decodeReply('s', '{"ok":true}'), undefined);
    assert.throws(
      () => decodeReply('s', '{"ok":false,"error":{"code":"forbidden","message":"no","hint":"ask"}}'),
      (err: unknown) =>
        err instanceof RemoteError && err.code === 'forbidden' && err.message === 'no' && err.hint === 'ask',
    );
  });
  void it('treats malformed replies as internal errors naming the subject', () => {
    for (const bad of ['nope', '{"x":1}', '[]', '{"ok":false}']) {
      assert.throws(
        () => decodeReply('svc.op', bad),
        (err: unknown) =>
          err instanceof RemoteError && err.code === 'internal' && err.message.includes('svc.op'),
      );
    }
  });
});
