/**
 * Shared integration-test fixtures: a control server built from this library (the same endpoints
 * as the Go test server in testdata/go-interop), the raw-Noise exchange, and the expected map
 * stream. Kept in step with testdata/go-interop/common.go and server.go.
 */
import * as http from 'node:http';
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import assert from 'node:assert/strict';
import {
  KEEP_ALIVE_FRAME,
  NoiseHttp2Server,
  createTs2021UpgradeHandler,
  encodeMapResponse,
  formatKey,
  isTs2021Request,
  keysEqual,
  parseMapRequest,
  parseRegisterRequest,
  readRequestBody,
  rejectPlainTs2021Request,
  respondJson,
  respondText,
  writeChunk,
  zeroKeyText,
  type MachinePublic,
  type MapResponse,
  type Node,
  type NoiseConn,
  type NoisePeer,
  type ParsedMapRequest,
  type PrivateKey,
  type RegisterResponse,
} from '../../src/index.js';

export function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed) & 0xff;
  return b;
}

export const RAW_SIZES = [10 * 1024, 64 * 1024, 1, 4077, 4078, 100_000];
export const GREETING_SIZE = 64 * 1024;
export const MAP_PEERS = 300;

/** Reads u32-BE length-prefixed messages from a stream. */
export class MessageReader {
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];
  private ended = false;
  private error: Error | undefined;

  constructor(stream: Duplex) {
    stream.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    stream.on('end', () => {
      this.ended = true;
      this.wake();
    });
    stream.on('error', (err: Error) => {
      this.error = err;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  async next(): Promise<Buffer> {
    for (;;) {
      if (this.buf.length >= 4) {
        const n = this.buf.readUInt32BE(0);
        if (this.buf.length >= 4 + n) {
          const m = this.buf.subarray(4, 4 + n);
          this.buf = this.buf.subarray(4 + n);
          return Buffer.from(m);
        }
      }
      if (this.error) throw this.error;
      if (this.ended) throw new Error('stream ended before a whole message');
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }
}

export function frameMsg(b: Uint8Array): Buffer {
  const out = Buffer.alloc(4 + b.length);
  out.writeUInt32BE(b.length, 0);
  out.set(b, 4);
  return out;
}

const xorA5 = (b: Buffer): Buffer => Buffer.from(b.map((c) => c ^ 0xa5));

/** Server side of the raw exchange; sprinkles zero-length records to check the peer skips them. */
export async function rawServer(conn: NoiseConn): Promise<void> {
  const reader = new MessageReader(conn);
  conn.writeEmptyRecord();
  conn.write(frameMsg(pattern(GREETING_SIZE, 77)));
  for (;;) {
    const m = await reader.next();
    if (m.length === 0) {
      conn.end(frameMsg(Buffer.from('bye')));
      return;
    }
    conn.writeEmptyRecord();
    conn.write(frameMsg(xorA5(m)));
  }
}

/** Client side of the raw exchange. */
export async function rawClient(conn: NoiseConn): Promise<void> {
  const reader = new MessageReader(conn);
  assert.deepEqual(await reader.next(), pattern(GREETING_SIZE, 77), 'greeting');
  for (const n of RAW_SIZES) {
    const m = pattern(n, n & 0xff);
    conn.write(frameMsg(m));
    assert.deepEqual(await reader.next(), xorA5(m), `reply to ${n}-byte message`);
  }
  conn.write(frameMsg(Buffer.alloc(0)));
  assert.equal((await reader.next()).toString(), 'bye');
}

function rawKeyHex(tag: string, i: number): string {
  const b = Buffer.alloc(32);
  b[0] = tag.charCodeAt(0);
  b.writeUInt32BE(i, 28);
  return b.toString('hex');
}

const CREATED = '2026-01-02T03:04:05Z';

/** The map stream both test servers send (mirrors buildMapFrames in common.go). */
export function buildMapFrames(req: ParsedMapRequest, machineKeyText: string): MapResponse[] {
  const addrs = ['100.64.0.1/32', 'fd7a:115c:a1e0::1/128'];
  const self: Node = {
    ID: 1,
    StableID: 'n1',
    Name: 'self.example.ts.net.',
    User: 1,
    Key: req.NodeKey,
    Machine: machineKeyText,
    DiscoKey: req.DiscoKey ?? zeroKeyText('disco'),
    Addresses: addrs,
    AllowedIPs: addrs,
    HomeDERP: 900,
    DERP: '127.3.3.40:900',
    MachineAuthorized: true,
    Cap: req.Version,
    Created: CREATED,
  };
  const peers: Node[] = [];
  for (let i = 0; i < MAP_PEERS; i++) {
    const id = i + 2;
    const a = [`100.64.${id >> 8}.${id & 255}/32`, `fd7a:115c:a1e0::${id.toString(16)}/128`];
    peers.push({
      ID: id,
      StableID: `n${id}`,
      Name: `peer-${id}.example.ts.net.`,
      User: 1,
      Key: 'nodekey:' + rawKeyHex('n', id),
      DiscoKey: 'discokey:' + rawKeyHex('d', id),
      Addresses: a,
      AllowedIPs: a,
      Endpoints: [`192.0.2.${id & 255}:41641`],
      HomeDERP: 900,
      DERP: '127.3.3.40:900',
      Cap: 113,
      Online: id % 2 === 0,
      Created: CREATED,
    });
  }
  return [
    { KeepAlive: true },
    {
      Node: self,
      DERPMap: {
        Regions: {
          '900': {
            RegionID: 900,
            RegionCode: 'local',
            RegionName: 'Local',
            Nodes: [
              {
                Name: '900a',
                RegionID: 900,
                HostName: '127.0.0.1',
                IPv4: '127.0.0.1',
                IPv6: 'none',
                STUNPort: -1,
                DERPPort: 3340,
              },
            ],
          },
        },
        omitDefaultRegions: true,
      },
      Peers: peers,
      DNSConfig: { Proxied: true, Domains: ['example.ts.net'] },
      Domain: 'example.ts.net',
      PacketFilter: [{ SrcIPs: ['*'], DstPorts: [{ IP: '*', Ports: { First: 0, Last: 65535 } }] }],
      UserProfiles: [{ ID: 1, LoginName: 'alice@example.com', DisplayName: 'Alice' }],
      SSHPolicy: { rules: [] },
      ControlTime: CREATED,
    },
    {
      PeersChangedPatch: [{ NodeID: 2, Online: true, DERPRegion: 900, Endpoints: ['198.51.100.7:41641'] }],
      OnlineChange: { '3': true },
    },
    { KeepAlive: true },
  ];
}

/** Checks a received map stream (mirrors checkMapStream in common.go). */
export function checkMapStream(msgs: MapResponse[], nodeKey: string, machineKeyText: string): void {
  assert.equal(msgs.length, 4, 'four map frames');
  assert.ok(msgs[0]!.KeepAlive && msgs[3]!.KeepAlive, 'frames 1 and 4 are keep-alives');
  const full = msgs[1]!;
  assert.equal(full.Node?.Key, nodeKey);
  assert.equal(full.Node?.Machine, machineKeyText);
  assert.equal(full.Node?.MachineAuthorized, true);
  assert.equal(full.Node?.HomeDERP, 900);
  assert.equal(full.Node?.DERP, '127.3.3.40:900');
  assert.equal(full.Peers?.length, MAP_PEERS);
  for (const [i, p] of full.Peers.entries()) {
    assert.equal(p.ID, i + 2);
    assert.equal(p.Key, 'nodekey:' + rawKeyHex('n', i + 2));
    assert.equal(p.DiscoKey, 'discokey:' + rawKeyHex('d', i + 2));
    assert.equal(p.Cap, 113);
    assert.equal(p.Online, (i + 2) % 2 === 0);
  }
  assert.equal(full.DERPMap?.Regions?.['900']?.Nodes[0]?.HostName, '127.0.0.1');
  assert.equal(full.DERPMap?.omitDefaultRegions, true);
  assert.deepEqual(full.PacketFilter?.[0]?.SrcIPs, ['*']);
  assert.equal(full.DNSConfig?.Proxied, true);
  assert.equal(full.Domain, 'example.ts.net');
  assert.deepEqual(full.SSHPolicy?.rules, []);
  assert.equal(full.UserProfiles?.length, 1);
  assert.ok(full.ControlTime);
  const patch = msgs[2]!;
  assert.equal(patch.PeersChangedPatch?.[0]?.NodeID, 2);
  assert.equal(patch.PeersChangedPatch?.[0]?.Online, true);
  assert.deepEqual(patch.PeersChangedPatch?.[0]?.Endpoints, ['198.51.100.7:41641']);
  assert.equal(patch.OnlineChange?.['3'], true);
}

/** Noise HTTP/2 endpoints of the test server (same as noiseHandler in server.go). */
async function handle(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  peer: NoisePeer,
): Promise<void> {
  const path = String(headers[':path']);
  if (path === '/echo') {
    const body = await readRequestBody(stream, undefined, headers);
    stream.respond({
      ':status': 200,
      'x-machine-key': peer.machineKeyText,
      'x-capver': String(peer.capVersion),
    });
    stream.end(`${createHash('sha256').update(body).digest('hex')} ${body.length}`);
    return;
  }
  if (path.startsWith('/big')) {
    await readRequestBody(stream);
    const n = Number(new URL(path, 'http://x').searchParams.get('n'));
    stream.respond({ ':status': 200 });
    stream.end(pattern(n, 99));
    return;
  }
  if (path === '/machine/register') {
    const req = parseRegisterRequest(await readRequestBody(stream, undefined, headers));
    const name = req.Hostinfo?.Hostname ?? '';
    let resp: RegisterResponse = {
      User: { ID: 1, DisplayName: name },
      Login: { ID: 1, Provider: '', LoginName: req.NodeKey, DisplayName: name },
      NodeKeyExpired: false,
      MachineAuthorized: true,
      AuthURL: '',
      Error: '',
    };
    if (req.Auth?.AuthKey) resp.Login.Provider = 'authkey:' + req.Auth.AuthKey;
    else
      resp = {
        User: { ID: 0, DisplayName: '' },
        Login: { ID: 0, Provider: '', LoginName: '', DisplayName: '' },
        NodeKeyExpired: false,
        MachineAuthorized: false,
        AuthURL: '',
        Error: 'no credentials',
      };
    respondJson(stream, 200, resp);
    return;
  }
  if (path === '/machine/map') {
    const req = parseMapRequest(await readRequestBody(stream, undefined, headers));
    if (req.Compress !== 'zstd' || req.Version !== peer.capVersion)
      return respondText(stream, 400, 'map: bad request fields');
    stream.respond({ ':status': 200 });
    const frames = buildMapFrames(req, peer.machineKeyText);
    if (!req.Stream) {
      // Lite update (OmitPeers): empty body. One-shot map: exactly one full frame.
      stream.end(req.OmitPeers ? undefined : encodeMapResponse(frames[1]!));
      return;
    }
    for (const m of frames) await writeChunk(stream, m.KeepAlive ? KEEP_ALIVE_FRAME : encodeMapResponse(m));
    stream.end();
    return;
  }
  respondText(stream, 404, 'no such endpoint');
}

export interface TestControlServer {
  readonly url: string;
  readonly h2: NoiseHttp2Server;
  close(): Promise<void>;
}

/** Starts the test control server on 127.0.0.1 (random port). */
export async function startTestControlServer(opts: {
  serverPrivate: PrivateKey;
  serverPublic: MachinePublic;
  rawPeer?: MachinePublic;
  earlyPayload?: boolean;
  minCapVersion?: number;
}): Promise<TestControlServer> {
  const h2 = new NoiseHttp2Server({ handler: (s, h, p) => handle(s, h, p) });
  const server = http.createServer((req, res) => {
    if (req.url?.startsWith('/key')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          legacyPublicKey: zeroKeyText('machine'),
          publicKey: formatKey('machine', opts.serverPublic),
        }),
      );
      return;
    }
    if (isTs2021Request(req)) return rejectPlainTs2021Request(req, res);
    res.writeHead(404).end();
  });
  const sockets = new Set<Duplex>();
  server.on('connection', (s: Duplex) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on(
    'upgrade',
    createTs2021UpgradeHandler({
      serverPrivate: opts.serverPrivate,
      earlyPayload: opts.earlyPayload ?? false,
      minCapVersion: opts.minCapVersion ?? 0,
      onConnection: (conn) => {
        if (opts.rawPeer && keysEqual(conn.peerMachineKey, opts.rawPeer)) {
          conn.on('error', () => undefined);
          rawServer(conn).catch(() => conn.destroy());
          return;
        }
        h2.serve(conn);
      },
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    h2,
    async close() {
      await h2.close(1000);
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
