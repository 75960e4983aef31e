import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ValidationError } from '@switchboard/common';
import { assertSubject, subjectMatches } from './subject.js';

void describe('subjectMatches', () => {
  const cases: [string, string, boolean][] = [
    ['a.b.c', 'a.b.c', true],
    ['a.b.c', 'a.b', false],
    ['a.*.c', 'a.x.c', true],
    ['a.*.c', 'a.x.y.c', false],
    ['a.*', 'a', false],
    ['a.>', 'a.b', true],
    ['a.>', 'a.b.c.d', true],
    ['a.>', 'a', false],
    ['>', 'a', true],
    ['*', 'a.b', false],
    ['events.>', 'events.v1.node-removed', true],
    ['events.>', 'eventsx.v1', false],
  ];
  for (const [p, s, want] of cases) {
    void it(`${p} ${want ? 'matches' : 'does not match'} ${s}`, () =>
      assert.equal(subjectMatches(p, s), want));
  }
});

void describe('assertSubject', () => {
  void it('accepts plain subjects and patterns where allowed', () => {
    assertSubject('keyreg.v1.register', false);
    assertSubject('events.>', true);
    assertSubject('a.*.c', true);
  });
  void it('refuses wildcards, empty tokens and spaces where not allowed', () => {
    for (const bad of ['events.>', 'a.*', 'a..b', '', 'a b', '.a', 'a.']) {
      assert.throws(() => assertSubject(bad, false), ValidationError, bad);
    }
    assert.throws(() => assertSubject('a.>.b', true), ValidationError);
    assert.throws(() => assertSubject('a.b*', true), ValidationError);
  });
});
