import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loginIdFromUrl } from './interactive-login.service.js';

test('the login id of a Followup URL', () => {
  assert.equal(
    loginIdFromUrl('https://sb.example.com/login/abcdefghijklmnopqrstuvwxyz012345'),
    'abcdefghijklmnopqrstuvwxyz012345',
  );
  assert.equal(
    loginIdFromUrl('https://sb.example.com/prefix/login/abcdefghijklmnop_-'),
    'abcdefghijklmnop_-',
  );
  assert.equal(loginIdFromUrl('https://sb.example.com/login/short'), null);
  assert.equal(loginIdFromUrl('https://sb.example.com/register/abcdefghijklmnopqrstuvwxyz'), null);
  assert.equal(loginIdFromUrl('not a url'), null);
});
