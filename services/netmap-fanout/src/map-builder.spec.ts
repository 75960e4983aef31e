import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { MapResponse, Node } from '@switchboard/protocol';
import { MapResponseJson, toJson, trustedJson } from './map-builder.js';

const peer = (id: number): Node => ({
  ID: id,
  StableID: `n${id}`,
  Name: `host${id}.example.test.`,
  User: 1,
  Key: `nodekey:${id.toString(16).padStart(64, '0')}`,
  Addresses: [`100.64.0.${id}/32`],
});

describe('MapResponseJson', () => {
  test('gives the bytes JSON.stringify gives for the same fields in the same order', () => {
    const expected: MapResponse = {
      Node: peer(1),
      DNSConfig: { Proxied: true, Domains: ['example.test'], Routes: { 'example.test.': [] } },
      Domain: 'example.test',
      PacketFilter: [],
      PeersRemoved: [4, 5],
      PeersChanged: [peer(2), peer(3)],
      PeersChangedPatch: [{ NodeID: 6, Online: true }],
      ControlTime: '2026-01-01T00:00:00.000Z',
    };
    const msg = new MapResponseJson()
      .setJson('Node', toJson(peer(1)))
      .set('DNSConfig', expected.DNSConfig!)
      .set('Domain', 'example.test')
      .setJson('PacketFilter', trustedJson('[]'))
      .set('PeersRemoved', [4, 5])
      .setNodes('PeersChanged', [toJson(peer(2)), toJson(peer(3))])
      .set('PeersChangedPatch', [{ NodeID: 6, Online: true }])
      .set('ControlTime', '2026-01-01T00:00:00.000Z');
    assert.equal(msg.text(), JSON.stringify(expected));
  });

  test('splits around a last Peers list so entry blocks can be compressed apart', () => {
    const msg = new MapResponseJson().set('Domain', 'example.test');
    const { head, tail } = msg.splitAtNodes('Peers');
    const entries = [toJson(peer(2)), toJson(peer(3))];
    assert.equal(
      head + entries.join(',') + tail,
      JSON.stringify({ Domain: 'example.test', Peers: [peer(2), peer(3)] }),
    );
    assert.equal(new MapResponseJson().splitAtNodes('Peers').head, '{"Peers":[');
  });

  test('is empty until a field is set', () => {
    const msg = new MapResponseJson();
    assert.equal(msg.empty, true);
    msg.set('KeepAlive', true);
    assert.equal(msg.empty, false);
    assert.equal(msg.text(), '{"KeepAlive":true}');
  });
});
