/**
 * The SAML login provider: `createSamlProvider(entry, deps)` validates a `type: saml` entry with the
 * schema from ./config.ts, reads the files it names and returns a LoginProvider (synchronously;
 * IdP metadata given by URL is fetched on first use). Problems are thrown as one ConfigError.
 */
import { ConfigError } from '@switchboard/common';
import { samlProviderConfigSchema, SamlXmlError } from '@switchboard/saml';
import { readSamlFiles, SamlProvider, type SamlProviderDeps } from './saml.provider.js';

export { samlProviderConfigSchema, samlConfigProblems, type SamlProviderConfig } from './config.js';
export { SamlProvider, type SamlProviderDeps } from './saml.provider.js';

export function createSamlProvider(entry: unknown, deps: SamlProviderDeps): SamlProvider {
  const r = samlProviderConfigSchema.safeParse(entry);
  const id = typeof (entry as { id?: unknown })?.id === 'string' ? (entry as { id: string }).id : '?';
  if (!r.success)
    throw new ConfigError(
      r.error.issues.map((i) => `SAML provider ${id}: ${i.path.join('.') || '(entry)'}: ${i.message}`),
    );
  try {
    const files = readSamlFiles(r.data);
    return new SamlProvider(r.data, deps, files.signing, files.idpMetadataXml);
  } catch (err) {
    const msg = err instanceof SamlXmlError ? `idpMetadataFile: ${err.message}` : (err as Error).message;
    throw new ConfigError([`SAML provider ${id}: ${msg}`]);
  }
}
export { LoginRefused, type VerifiedIdentity } from '../provider.js';
