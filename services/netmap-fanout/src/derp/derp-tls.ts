/**
 * The relay's TLS certificate and the default DERP map that points at this server.
 *
 * With DERP_TLS_CERT_FILE/DERP_TLS_KEY_FILE the operator's certificate is served and clients verify
 * it normally (it must name the DERP host). Without them a self-signed ECDSA P-256 certificate is
 * made on first start and kept in DATA_DIR; the map then tells clients how to accept it, checked
 * against the client sources:
 *  - capability version ≥ 115 (tailscale v1.82+): `CertName: "sha256-raw:<sha256 of the DER>"`,
 *    which pins exactly this certificate (derphttp `tlsClient` → tlsdial.SetConfigExpectedCertHash);
 *  - older clients (v1.80) do not know sha256-raw (they would treat it as a host name and fail),
 *    so they get `InsecureForTests: true`, which skips certificate verification.
 * We serve no DERP meta-certificate, so there is one certificate in the chain: v1.82–v1.85 refuse a
 * pinned chain with the meta-cert ("unexpected multiple certs presented", fixed in tailscale PR
 * #16016), and clients fall back to reading the 101 response (one round trip more, no fast start).
 */
import 'reflect-metadata';
import { createHash, webcrypto } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname } from 'node:path';
import * as x509 from '@peculiar/x509';
import type { Logger } from '@switchboard/common';
import type { DERPMap } from '@switchboard/protocol';

export interface RelayTls {
  key: string;
  cert: string;
  /** sha256 of the certificate's DER, hex; set when the certificate is our self-signed one. */
  pinnedSha256?: string;
}

/** First capability version that understands `CertName: "sha256-raw:…"` (tailscale v1.82). */
export const CERT_PIN_MIN_CAP_VERSION = 115;

/** Loads the operator's certificate, or the self-signed one in `dir` (made on first start). */
export async function loadRelayTls(o: {
  certFile?: string;
  keyFile?: string;
  dir: string;
  hostName: string;
  logger: Logger;
}): Promise<RelayTls> {
  if (o.certFile && o.keyFile)
    return { cert: readFileSync(o.certFile, 'utf8'), key: readFileSync(o.keyFile, 'utf8') };
  const file = `${o.dir}/derp-tls.pem`;
  if (existsSync(file)) {
    const got = readPair(file);
    const parsed = new x509.X509Certificate(got.cert);
    const names = parsed.getExtension(x509.SubjectAlternativeNameExtension)?.names.toJSON() ?? [];
    if (names.some((n) => n.value === o.hostName) && parsed.notAfter.getTime() > Date.now() + 86_400_000)
      return { ...got, pinnedSha256: sha256Der(got.cert) };
    o.logger.warn(
      'the self-signed DERP certificate does not name this host or expires soon; making a new one',
      {
        file,
        hostName: o.hostName,
      },
    );
    rmSync(file, { force: true });
  }
  const made = await makeSelfSigned(o.hostName);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  try {
    writeFileSync(file, made.key + made.cert, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // Another replica sharing DATA_DIR made it first: use theirs.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    const got = readPair(file);
    return { ...got, pinnedSha256: sha256Der(got.cert) };
  }
  o.logger.info('made a self-signed certificate for the embedded DERP relay; clients pin its hash', {
    file,
    hostName: o.hostName,
  });
  return { ...made, pinnedSha256: sha256Der(made.cert) };
}

/** The private key and certificate kept together in one PEM file (written atomically with `wx`). */
function readPair(file: string): { key: string; cert: string } {
  const text = readFileSync(file, 'utf8');
  const key = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n/.exec(text)?.[0];
  const cert = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/.exec(text)?.[0];
  if (!key || !cert)
    throw new Error(`${file} should hold a PRIVATE KEY and a CERTIFICATE; delete it to make a new one`);
  return { key, cert };
}

function sha256Der(pem: string): string {
  const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  return createHash('sha256').update(der).digest('hex');
}

async function makeSelfSigned(hostName: string): Promise<{ key: string; cert: string }> {
  const crypto = webcrypto;
  x509.cryptoProvider.set(crypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await crypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const san = isIP(hostName)
    ? { type: 'ip' as const, value: hostName }
    : { type: 'dns' as const, value: hostName };
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(8)))
      .toString('hex')
      .replace(/^[89a-f]/, '1'),
    name: `CN=${hostName}`,
    notBefore: new Date(now - 86_400_000),
    notAfter: new Date(now + 5 * 365 * 86_400_000),
    keys,
    signingAlgorithm: alg,
    extensions: [
      new x509.SubjectAlternativeNameExtension([san]),
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
    ],
  });
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END PRIVATE KEY-----\n`;
  return { key: keyPem.replace(/\n\n/g, '\n'), cert: cert.toString('pem') + '\n' };
}

export const DEFAULT_DERP_REGION_ID = 900;

/** The one-region map of this server's own relay, as one client of `capVersion` should get it. */
export function selfDerpMap(o: {
  hostName: string;
  derpPort: number;
  stunPort: number;
  tls: RelayTls;
  capVersion: number;
  regionId?: number;
}): DERPMap {
  const id = o.regionId ?? DEFAULT_DERP_REGION_ID;
  const fam = isIP(o.hostName);
  const node: Record<string, unknown> = {
    Name: `${id}a`,
    RegionID: id,
    HostName: o.hostName,
    DERPPort: o.derpPort,
    STUNPort: o.stunPort,
  };
  if (fam === 4) Object.assign(node, { IPv4: o.hostName, IPv6: 'none' });
  if (fam === 6) Object.assign(node, { IPv6: o.hostName, IPv4: 'none' });
  if (o.tls.pinnedSha256) {
    if (o.capVersion >= CERT_PIN_MIN_CAP_VERSION) node.CertName = `sha256-raw:${o.tls.pinnedSha256}`;
    else node.InsecureForTests = true;
  }
  return {
    Regions: {
      [String(id)]: { RegionID: id, RegionCode: 'switchboard', RegionName: 'Switchboard', Nodes: [node] },
    },
    omitDefaultRegions: true,
  } as unknown as DERPMap;
}
