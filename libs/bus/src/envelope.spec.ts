import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  RemoteError,
  SwitchboardError,
  ValidationError,
  configureLogging,
  createLogger,
} from '@switchboard/common';
import { BUS_MAX_JSON_DEPTH, decodePayload, decodeReply, encodePayload, handleRequest } from './envelope.js';

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
  void it('answers JSON nested past the limit with invalid_input naming it, without calling the handler', async () => {
    let called = false;
    for (const depth of [BUS_MAX_JSON_DEPTH + 1, 20_000]) {
      const text = `{"a":${'['.repeat(depth)}${']'.repeat(depth)}}`;
      const r = (await run(text, async () => (called = true))) as {
        ok: false;
        error: { code: string; message: string };
      };
      assert.equal(r.error.code, 'invalid_input');
      assert.match(
        r.error.message,
        new RegExp(`^message on "svc.v1.op": JSON nested deeper than ${BUS_MAX_JSON_DEPTH} levels`),
      );
      assert.doesNotMatch(r.error.message, /call stack/);
    }
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

void describe('decodePayload', () => {
  void it('accepts nesting up to the limit and refuses deeper or oversized messages, naming the subject', () => {
    const nest = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
    assert.ok(Array.isArray(decodePayload('a.b', nest(BUS_MAX_JSON_DEPTH))));
    assert.throws(
      () => decodePayload('a.b', nest(BUS_MAX_JSON_DEPTH + 1)),
      (err: unknown) =>
        err instanceof ValidationError &&
        err.message.startsWith(`message on "a.b": JSON nested deeper than ${BUS_MAX_JSON_DEPTH} levels`),
    );
    assert.throws(
      () => decodePayload('a.b', '"xxxxxxxxxx"', 8),
      (err: unknown) =>
        err instanceof ValidationError && /12 bytes is over the limit of 8 bytes/.test(err.message),
    );
    assert.throws(
      () => decodePayload('a.b', '{nope'),
      (err: unknown) =>
        err instanceof ValidationError && err.message.startsWith('message on "a.b": body is not valid JSON'),
    );
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
  void it('a reply nested past the limit is an internal error naming the limit', () => {
    const deep = `{"ok":true,"result":${'['.repeat(5_000)}${']'.repeat(5_000)}}`;
    assert.throws(
      () => decodeReply('svc.op', deep),
      (err: unknown) =>
        err instanceof RemoteError &&
        err.code === 'internal' &&
        err.message ===
          `malformed reply on "svc.op": JSON nested deeper than ${BUS_MAX_JSON_DEPTH} levels (at offset ${20 + BUS_MAX_JSON_DEPTH - 1})`,
    );
  });
  void it('treats malformed replies as internal errors naming the subject', () => {
    for (const bad of [
      'nope',
      '{"x":1}',
      '[]',
      '{"ok":false}',
      `{"ok":true,"result":${'['.repeat(20_000)}}`,
    ]) {
      assert.throws(
        () => decodeReply('svc.op', bad),
        (err: unknown) =>
          err instanceof RemoteError && err.code === 'internal' && err.message.includes('svc.op'),
      );
    }
  });
});
