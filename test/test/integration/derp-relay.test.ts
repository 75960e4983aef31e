/**
 * The embedded DERP relay and STUN of `switchboard serve` with no DERP configuration: the map
 * points at the server itself (TLS on the edge port, pinned self-signed certificate), registered
 * nodes relay to each other, an unknown node key is refused, a deleted node is cut off at once,
 * malformed and oversized frames close only their sender, and STUN answers binding requests.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { adminCall, serve, type RunningServer } from '@switchboard/switchboard';
import { DerpClient } from '@switchboard/netmap-fanout';
import { BoxKey, bindingRequest, parseBindingResponse, type ServerFrame } from '@switchboard/derp';
import { testLogger, waitFor } from '@switchboard/testing';
import { SimNode } from '../../src/sim-node.js';

let srv: RunningServer;
let dir: string;
const nodes: SimNode[] = [];
const clients: DerpClient[] = [];
let derpNode: Record<string, unknown>;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sb-derp-'));
  srv = await serve({
    inMemory: true,
    logger: testLogger('derp'),
    env: {
      LISTEN_ADDR: '127.0.0.1:0',
      DATA_DIR: dir,
      LOG_LEVEL: 'silent',
      STUN_PORT: '0',
      DERP_HOSTNAME: '127.0.0.1',
    },
  });
});

after(async () => {
  for (const c of clients) c.close();
  await Promise.all(nodes.map((n) => n.close().catch(() => undefined)));
  await srv.stop();
  rmSync(dir, { recursive: true, force: true });
});

const admin = () => ({ socketPath: srv.adminSocket });

async function join2(name: string, key: string): Promise<SimNode> {
  const n = new SimNode({ url: `http://127.0.0.1:${srv.port}`, hostname: name });
  nodes.push(n);
  await n.connect();
  await n.register(key);
  await n.startStream();
  return n;
}

function relayClient(key: BoxKey, frames: ServerFrame[] = [], onClose?: () => void): DerpClient {
  const c = new DerpClient({
    url: `https://127.0.0.1:${srv.port}/derp`,
    key,
    insecure: true,
    onFrame: (f) => frames.push(f),
    ...(onClose ? { onClose } : {}),
  });
  clients.push(c);
  return c;
}

let a: SimNode;
let b: SimNode;

test('the map served with no DERP configuration is one region pointing at this server', async () => {
  await adminCall(admin(), 'POST', '/api/v1/users', { name: 'dee' });
  const { key } = (await adminCall(admin(), 'POST', '/api/v1/preauthkeys', {
    user: 'dee',
    reusable: true,
  })) as {
    key: string;
  };
  a = await join2('a', key);
  b = await join2('b', key);
  const first = a.messages[0] as unknown as {
    DERPMap: { Regions: Record<string, { Nodes: Record<string, unknown>[] }> };
  };
  const region = first.DERPMap.Regions['900'];
  assert.ok(region, 'region 900');
  derpNode = region.Nodes[0] as Record<string, unknown>;
  assert.equal(derpNode.HostName, '127.0.0.1');
  assert.equal(derpNode.IPv4, '127.0.0.1');
  assert.equal(derpNode.DERPPort, srv.port);
  assert.ok(Number(derpNode.STUNPort) > 0);
  assert.ok(
    derpNode.CertName === undefined
      ? derpNode.InsecureForTests === true
      : /^sha256-raw:[0-9a-f]{64}$/.test(derpNode.CertName as string),
  );
});

test('the certificate on the edge port is the pinned one, and plain HTTP still answers on it', async () => {
  const cert = await new Promise<Buffer>((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port: srv.port, rejectUnauthorized: false }, () => {
      resolve(s.getPeerX509Certificate()?.raw ?? Buffer.alloc(0));
      s.destroy();
    });
    s.on('error', reject);
  });
  const { createHash } = await import('node:crypto');
  const hash = createHash('sha256').update(cert).digest('hex');
  if (typeof derpNode.CertName === 'string') assert.equal(derpNode.CertName, `sha256-raw:${hash}`);
  const r = await fetch(`http://127.0.0.1:${srv.port}/health`);
  assert.equal(r.status, 200);
  const g = await fetch(`http://127.0.0.1:${srv.port}/generate_204`, {
    headers: { 'X-Tailscale-Challenge': 'ts_abc.1' },
  });
  assert.equal(g.status, 204);
  assert.equal(g.headers.get('x-tailscale-response'), 'response ts_abc.1');
  const p = await fetch(`http://127.0.0.1:${srv.port}/derp/probe`);
  assert.equal(p.status, 200);
  assert.equal(p.headers.get('access-control-allow-origin'), '*');
  assert.equal((await fetch(`http://127.0.0.1:${srv.port}/derp`)).status, 426);
});

test('two registered nodes relay packets; an unknown node key is refused', async () => {
  const ka = new BoxKey(Buffer.from(a.nodePrivate));
  const kb = new BoxKey(Buffer.from(b.nodePrivate));
  const got: ServerFrame[] = [];
  const ca = relayClient(ka);
  const cb = relayClient(kb, got);
  await ca.connect();
  await cb.connect();
  ca.send(kb.publicKey, Buffer.from('hello b'));
  await waitFor(() => got.some((f) => f.type === 'recv-packet'), { what: 'b to receive a packet' });
  const rp = got.find((f) => f.type === 'recv-packet');
  assert.ok(rp && rp.type === 'recv-packet');
  assert.deepEqual(rp.src, ka.publicKey);
  assert.equal(rp.packet.toString(), 'hello b');

  const stranger = relayClient(new BoxKey(Buffer.alloc(32, 9)));
  await assert.rejects(stranger.connect(), /closed during the DERP handshake/);
  assert.ok(srv.fanout.derp && srv.fanout.derp.relay.stats.refused.unknown_node >= 1);
});

test('malformed and oversized frames close only their sender; a flood is dropped at the queue', async () => {
  const ka = new BoxKey(Buffer.from(a.nodePrivate));
  const kb = new BoxKey(Buffer.from(b.nodePrivate));
  const got: ServerFrame[] = [];
  const cb = relayClient(kb, got);
  await cb.connect();
  let badClosed = false;
  const bad = relayClient(ka, [], () => (badClosed = true));
  await bad.connect();
  const huge = Buffer.alloc(5);
  huge[0] = 0x04;
  huge.writeUInt32BE(10 << 20, 1);
  bad.writeRaw(huge);
  await waitFor(() => badClosed, { what: 'the sender of an oversized frame to be closed' });
  let bad2Closed = false;
  const bad2 = relayClient(ka, [], () => (bad2Closed = true));
  await bad2.connect();
  bad2.writeRaw(Buffer.from([0x07, 0, 0, 0, 2, 1, 1])); // NotePreferred of 2 bytes
  await waitFor(() => bad2Closed, { what: 'the sender of a malformed frame to be closed' });

  // b stops reading; a floods it: packets over b's queue are dropped and counted, a stays up.
  const relay = srv.fanout.derp!.relay;
  const flooder = relayClient(ka);
  await flooder.connect();
  const before = relay.stats.drops.queue_full;
  const pkt = Buffer.alloc(1200);
  (cb as unknown as { socket: { pause(): void } }).socket.pause();
  for (let i = 0; i < 3000; i++) flooder.send(kb.publicKey, pkt);
  await waitFor(() => relay.stats.drops.queue_full > before, { what: 'drops at the full queue' });
  assert.ok(flooder.open && cb.open, 'neither end was disconnected');
  (cb as unknown as { socket: { resume(): void } }).socket.resume();
  flooder.send(kb.publicKey, Buffer.from('after the flood'));
  await waitFor(
    () => got.some((f) => f.type === 'recv-packet' && f.packet.toString() === 'after the flood'),
    {
      what: 'b to receive again after the flood',
    },
  );
});

test('a node deleted while connected to the relay is disconnected at once', async () => {
  const kb = new BoxKey(Buffer.from(b.nodePrivate));
  let closed = false;
  const cb = relayClient(kb, [], () => (closed = true));
  await cb.connect();
  await adminCall(admin(), 'DELETE', `/api/v1/nodes/${String(b.self!.ID)}`);
  await waitFor(() => closed, { what: "the deleted node's relay connection to close", timeoutMs: 3000 });
  await assert.rejects(relayClient(kb).connect(), /closed during the DERP handshake/);
});

test('STUN answers a tailscale binding request with the source address', async () => {
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  const port = sock.address().port;
  const tx = Buffer.alloc(12, 7);
  const reply = new Promise<Buffer>((r) => sock.once('message', (m) => r(m)));
  sock.send(bindingRequest(tx), Number(derpNode.STUNPort), '127.0.0.1');
  const parsed = parseBindingResponse(await reply);
  sock.close();
  assert.deepEqual(parsed, { txId: tx, ip: '127.0.0.1', port });
});
