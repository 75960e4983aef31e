/**
 * Login providers from a YAML or JSON file (path in LOGIN_CONFIG_FILE), secrets from files.
 * Validated once at start: every problem is collected into one ConfigError naming each of them.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { ConfigError } from '@switchboard/common';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

const providerId = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, 'ids are 1-32 lowercase letters, digits, "_" or "-"');

const common = {
  id: providerId,
  displayName: z.string().min(1).max(80),
  /** Put before each IdP group name, so IdP groups never collide with policy-file groups. */
  groupsPrefix: z
    .string()
    .regex(/^[A-Za-z0-9._:@-]*$/, 'a prefix of letters, digits, ".", "_", ":", "@" or "-"')
    .default(''),
  /** Only users an administrator created (matched by login name or email) may sign in. */
  inviteOnly: z.boolean().default(false),
  requireMfa: z.boolean().default(false),
  allowedDomains: z.array(z.string().min(1)).default([]),
  allowedUsers: z.array(z.string().min(1)).default([]),
  allowedGroups: z.array(z.string().min(1)).default([]),
};

export const oidcProviderSchema = z
  .object({
    ...common,
    type: z.literal('oidc'),
    issuer: z.string().url(),
    clientId: z.string().min(1),
    clientSecretFile: z.string().min(1).optional(),
    scopes: z.array(z.string()).default(['openid', 'profile', 'email']),
    /** The claim that carries the groups (a string or an array of strings). */
    groupsClaim: z.string().min(1).default('groups'),
    /** `acr` values that count as MFA; sent as `acr_values` when requireMfa. */
    mfaAcrValues: z.array(z.string()).default([]),
    /** `amr` values (RFC 8176) that count as MFA. */
    mfaAmrValues: z.array(z.string()).default(['mfa', 'otp', 'hwk', 'swk', 'sc', 'fpt']),
    /** Trust `email` even when `email_verified` is not true (default: only verified emails count). */
    trustUnverifiedEmail: z.boolean().default(false),
    /** Allow an http:// issuer (tests, a local OP); never in production. */
    allowInsecureIssuer: z.boolean().default(false),
  })
  .strict();
export type OidcProviderConfig = z.infer<typeof oidcProviderSchema> & { clientSecret?: string };

/** SAML entries are validated by the SAML provider's own schema (services/identity/src/login/saml). */
const samlProviderSchema = z.object({ ...common, type: z.literal('saml') }).passthrough();
export type SamlEntry = z.infer<typeof samlProviderSchema>;

const fileSchema = z
  .object({
    providers: z.array(z.discriminatedUnion('type', [oidcProviderSchema, samlProviderSchema])).min(1),
  })
  .strict();

export type ProviderConfig = OidcProviderConfig | SamlEntry;
export interface LoginConfig {
  providers: ProviderConfig[];
  /** The entry as written (SAML entries go to the SAML provider's schema as they are). */
  raw: Record<string, unknown>[];
}

/** Reads and validates the login configuration; throws ConfigError naming every problem. */
export function loadLoginConfig(path: string): LoginConfig {
  if (!existsSync(path))
    throw new ConfigError([`LOGIN_CONFIG_FILE: ${path} does not exist; point it at the providers file`]);
  let doc: unknown;
  try {
    const text = readFileSync(path, 'utf8');
    doc = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError([`LOGIN_CONFIG_FILE: ${path} is not valid YAML/JSON: ${(err as Error).message}`]);
  }
  return parseLoginConfig(doc, dirname(path), path);
}

export function parseLoginConfig(doc: unknown, baseDir: string, where = 'login config'): LoginConfig {
  const r = fileSchema.safeParse(doc);
  const problems: string[] = [];
  if (!r.success) {
    for (const i of r.error.issues) problems.push(`${where}: ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ConfigError(problems);
  }
  const ids = new Set<string>();
  const providers: ProviderConfig[] = [];
  r.data.providers.forEach((p, i) => {
    const at = `${where}: providers.${i} (${p.id})`;
    if (ids.has(p.id)) problems.push(`${at}: duplicate id "${p.id}"; give each provider its own id`);
    ids.add(p.id);
    if (p.type === 'oidc') {
      if (p.issuer.startsWith('http://') && !p.allowInsecureIssuer)
        problems.push(
          `${at}: issuer ${p.issuer} is not https; use https (or allowInsecureIssuer for a test OP)`,
        );
      let clientSecret: string | undefined;
      if (p.clientSecretFile !== undefined) {
        const f = isAbsolute(p.clientSecretFile) ? p.clientSecretFile : resolve(baseDir, p.clientSecretFile);
        try {
          clientSecret = readFileSync(f, 'utf8').trim();
          if (clientSecret === '') problems.push(`${at}: clientSecretFile ${f} is empty`);
        } catch (err) {
          problems.push(`${at}: clientSecretFile ${f} cannot be read: ${(err as Error).message}`);
        }
      }
      if (p.requireMfa && p.mfaAcrValues.length === 0 && p.mfaAmrValues.length === 0)
        problems.push(`${at}: requireMfa needs mfaAcrValues or mfaAmrValues to recognise MFA`);
      providers.push(clientSecret === undefined ? p : { ...p, clientSecret });
    } else providers.push(p);
  });
  if (problems.length > 0) throw new ConfigError(problems);
  return { providers, raw: (doc as { providers: Record<string, unknown>[] }).providers };
}
