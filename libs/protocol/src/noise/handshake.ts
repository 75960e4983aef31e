/**
 * Noise_IK_25519_ChaChaPoly_BLAKE2s exactly as Tailscale's controlbase frames it. The client
 * (machine) initiates with a 101-byte message carried in the /ts2021 upgrade header; the server
 * answers with 51 bytes. Handshake payloads are empty; k1 protects client→server records, k2
 * server→client. Both sides are pure functions of their inputs (ephemeral keys can be injected for
 * deterministic test transcripts).
 */
import type { KeyObject } from 'node:crypto';
import { ValidationError } from '@switchboard/common';
import { ProtocolError } from '../errors.js';
import {
  generateEphemeral,
  keyFromBytes,
  privateKeyObject,
  publicKeyFromPrivate,
  x25519,
  type MachinePublic,
  type PrivateKey,
} from '../keys.js';
import {
  HEADER_LEN,
  INITIATION_HEADER_LEN,
  INITIATION_LEN,
  INITIATION_PAYLOAD_LEN,
  MSG_TYPE_INITIATION,
  MSG_TYPE_RESPONSE,
  RESPONSE_LEN,
  RESPONSE_PAYLOAD_LEN,
  protocolPrologue,
} from './messages.js';
import { aeadOpen, aeadSeal, blake2s, hkdf2, nonceFor } from './primitives.js';
import { TransportCipher } from './transport-cipher.js';

export const NOISE_PROTOCOL_NAME = 'Noise_IK_25519_ChaChaPoly_BLAKE2s';
const ZERO_NONCE = nonceFor(0);
const EMPTY = new Uint8Array(0);

/** An established Noise session: one cipher per direction plus what the handshake authenticated. */
export interface NoiseSession {
  /** Cipher for records this side sends. */
  readonly tx: TransportCipher;
  /** Cipher for records this side receives. */
  readonly rx: TransportCipher;
  /** The peer's static key: the machine key on the server, the server key on the client. */
  readonly peer: MachinePublic;
  /** The protocol (capability) version from the initiation header. */
  readonly version: number;
  /** Final handshake hash h (for channel binding; nothing on the wire uses it). */
  readonly handshakeHash: Uint8Array;
}

/** The symmetric state of an in-flight handshake (h and ck), as in the Noise spec §5.2. */
class SymmetricState {
  h: Uint8Array;
  ck: Uint8Array;

  constructor() {
    this.h = blake2s(Buffer.from(NOISE_PROTOCOL_NAME, 'latin1'));
    this.ck = this.h;
  }

  mixHash(data: Uint8Array): void {
    this.h = blake2s(this.h, data);
  }

  /** MixKey(X25519(priv, pub)); returns the single-use cipher key. */
  mixDH(priv: PrivateKey | KeyObject, pub: Uint8Array, step: string): Uint8Array {
    let shared: Uint8Array;
    try {
      shared = x25519(priv, pub);
    } catch (err) {
      throw new ProtocolError('noise_handshake_failed', `computing ${step}: ${(err as Error).message}`);
    }
    const [ck, k] = hkdf2(this.ck, shared);
    this.ck = ck;
    return k;
  }

  encryptAndHash(key: Uint8Array, plaintext: Uint8Array): Buffer {
    const ct = aeadSeal(key, ZERO_NONCE, plaintext, this.h);
    this.mixHash(ct);
    return ct;
  }

  decryptAndHash(key: Uint8Array, sealed: Uint8Array, what: string): Buffer {
    let pt: Buffer;
    try {
      pt = aeadOpen(key, ZERO_NONCE, sealed, this.h);
    } catch {
      throw new ProtocolError(
        'noise_handshake_failed',
        `decrypting ${what}: chacha20poly1305: message authentication failed`,
      );
    }
    this.mixHash(sealed);
    return pt;
  }

  split(): [Uint8Array, Uint8Array] {
    return hkdf2(this.ck, EMPTY);
  }
}

/** Test hook: fixed ephemeral private keys make transcripts deterministic. Never set in production. */
export interface HandshakeOptions {
  ephemeralPrivate?: PrivateKey;
}

function ephemeral(opts: HandshakeOptions | undefined): { key: KeyObject; public: Uint8Array } {
  if (opts?.ephemeralPrivate) {
    const priv = opts.ephemeralPrivate;
    return { key: privateKeyObject(priv, false), public: publicKeyFromPrivate('machine', priv) };
  }
  return generateEphemeral();
}

function checkVersion(version: number): void {
  if (!Number.isInteger(version) || version < 0 || version > 0xffff)
    throw new ValidationError(`protocol version ${version} does not fit the 16-bit header field`);
}

/** The client half-way through the handshake: send `initiation`, then call finish() with the reply. */
export class ClientHandshake {
  /** The 101-byte initiation message (goes base64-encoded into X-Tailscale-Handshake). */
  readonly initiation: Uint8Array;
  private finished = false;

  constructor(
    private readonly state: SymmetricState,
    initiation: Uint8Array,
    private readonly machinePrivate: PrivateKey,
    private readonly ephemeralKey: KeyObject,
    private readonly serverPublic: MachinePublic,
    readonly version: number,
  ) {
    this.initiation = initiation;
  }

  /** Processes the server's 51-byte response message and returns the established session. */
  finish(response: Uint8Array): NoiseSession {
    if (this.finished) throw new ProtocolError('noise_handshake_failed', 'handshake continuation used twice');
    this.finished = true;
    if (response.length !== RESPONSE_LEN)
      throw new ProtocolError('noise_handshake_failed', `wrong handshake response size ${response.length}`);
    if (response[0] !== MSG_TYPE_RESPONSE)
      throw new ProtocolError('noise_handshake_failed', `unexpected response message type ${response[0]}`);
    const len = (response[1]! << 8) | response[2]!;
    if (len !== RESPONSE_PAYLOAD_LEN)
      throw new ProtocolError(
        'noise_handshake_failed',
        `wrong length ${len} received for handshake response`,
      );
    const s = this.state;
    // <- e, ee, se
    const serverEphemeral = response.subarray(HEADER_LEN, HEADER_LEN + 32);
    s.mixHash(serverEphemeral);
    s.mixDH(this.ephemeralKey, serverEphemeral, 'ee');
    const k = s.mixDH(this.machinePrivate, serverEphemeral, 'se');
    s.decryptAndHash(k, response.subarray(HEADER_LEN + 32), 'payload');
    const [k1, k2] = s.split();
    return {
      tx: new TransportCipher(k1),
      rx: new TransportCipher(k2),
      peer: this.serverPublic,
      version: this.version,
      handshakeHash: s.h,
    };
  }
}

/** Starts a client handshake (controlbase.ClientDeferred). */
export function initiate(
  machinePrivate: PrivateKey,
  serverPublic: MachinePublic,
  version: number,
  opts?: HandshakeOptions,
): ClientHandshake {
  checkVersion(version);
  const s = new SymmetricState();
  s.mixHash(protocolPrologue(version));
  // <- s
  s.mixHash(serverPublic);
  // -> e, es, s, ss
  const eph = ephemeral(opts);
  const msg = Buffer.alloc(INITIATION_LEN);
  msg.writeUInt16BE(version, 0);
  msg[2] = MSG_TYPE_INITIATION;
  msg.writeUInt16BE(INITIATION_PAYLOAD_LEN, 3);
  Buffer.from(eph.public).copy(msg, INITIATION_HEADER_LEN);
  s.mixHash(eph.public);
  let k = s.mixDH(eph.key, serverPublic, 'es');
  const machinePublic = publicKeyFromPrivate('machine', machinePrivate);
  s.encryptAndHash(k, machinePublic).copy(msg, INITIATION_HEADER_LEN + 32);
  k = s.mixDH(machinePrivate, serverPublic, 'ss');
  s.encryptAndHash(k, EMPTY).copy(msg, INITIATION_HEADER_LEN + 32 + 48);
  return new ClientHandshake(s, new Uint8Array(msg), machinePrivate, eph.key, serverPublic, version);
}

/**
 * A structural problem with the initiation that the server reports to the client in an error frame
 * (type 3) before closing, with exactly controlbase's text in `errorFrameText`.
 */
export class HandshakeRejection extends ProtocolError {
  constructor(readonly errorFrameText: string) {
    super('noise_handshake_failed', errorFrameText);
  }
}

export interface InitiationHeader {
  readonly version: number;
}

/**
 * Checks the size, type and length field of an initiation and returns its version, throwing
 * HandshakeRejection with controlbase's error text otherwise. Lets a server refuse old versions
 * before doing any cryptography.
 */
export function parseInitiationHeader(msg: Uint8Array): InitiationHeader {
  if (msg.length !== INITIATION_LEN) throw new HandshakeRejection('wrong handshake initiation size');
  if (msg[2] !== MSG_TYPE_INITIATION) throw new HandshakeRejection('unexpected handshake message type');
  const len = (msg[3]! << 8) | msg[4]!;
  if (len !== INITIATION_PAYLOAD_LEN) throw new HandshakeRejection('wrong handshake initiation length');
  return { version: (msg[0]! << 8) | msg[1]! };
}

export interface AcceptedHandshake {
  /** The 51-byte response message to send to the client. */
  readonly response: Uint8Array;
  /** The client's authenticated machine key (its Noise static key). */
  readonly machineKey: MachinePublic;
  /** The client's protocol (capability) version from the initiation header. */
  readonly version: number;
  readonly session: NoiseSession;
}

/**
 * Server side of the handshake (controlbase.Server with the initiation already in hand).
 * Structural problems throw HandshakeRejection (send its errorFrameText); cryptographic failures
 * throw ProtocolError('noise_handshake_failed') and the connection should just be closed.
 */
export function acceptInitiation(
  msg: Uint8Array,
  serverPrivate: PrivateKey,
  opts?: HandshakeOptions,
): AcceptedHandshake {
  const { version } = parseInitiationHeader(msg);
  const s = new SymmetricState();
  s.mixHash(protocolPrologue(version));
  // <- s
  s.mixHash(publicKeyFromPrivate('machine', serverPrivate));
  // -> e, es, s, ss
  const clientEphemeral = msg.subarray(INITIATION_HEADER_LEN, INITIATION_HEADER_LEN + 32);
  s.mixHash(clientEphemeral);
  let k = s.mixDH(serverPrivate, clientEphemeral, 'es');
  const machineKeyBytes = s.decryptAndHash(
    k,
    msg.subarray(INITIATION_HEADER_LEN + 32, INITIATION_HEADER_LEN + 32 + 48),
    'machine key',
  );
  const machineKey = keyFromBytes('machine', machineKeyBytes);
  k = s.mixDH(serverPrivate, machineKey, 'ss');
  s.decryptAndHash(k, msg.subarray(INITIATION_HEADER_LEN + 32 + 48), 'initiation tag');
  // <- e, ee, se
  const eph = ephemeral(opts);
  const resp = Buffer.alloc(RESPONSE_LEN);
  resp[0] = MSG_TYPE_RESPONSE;
  resp.writeUInt16BE(RESPONSE_PAYLOAD_LEN, 1);
  Buffer.from(eph.public).copy(resp, HEADER_LEN);
  s.mixHash(eph.public);
  s.mixDH(eph.key, clientEphemeral, 'ee');
  k = s.mixDH(eph.key, machineKey, 'se');
  s.encryptAndHash(k, EMPTY).copy(resp, HEADER_LEN + 32);
  const [k1, k2] = s.split();
  return {
    response: new Uint8Array(resp),
    machineKey,
    version,
    session: {
      tx: new TransportCipher(k2),
      rx: new TransportCipher(k1),
      peer: machineKey,
      version,
      handshakeHash: s.h,
    },
  };
}
