/**
 * The SAML provider entry of the login configuration file (`providers:` list, `type: saml`), as the
 * seam in LOGIN-INTERFACE.md fixes it, plus a few optional SAML-only members. Validated with zod at
 * boot; `samlSettings` applies the defaults.
 */
import { z } from 'zod';
import { DEFAULT_MFA_AUTHN_CONTEXTS } from './authn-context.js';
import { DEFAULT_ATTRIBUTE_NAMES, type AttributeMapping } from './attributes.js';

const names = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

export const samlProviderConfigSchema = z
  .object({
    id: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lower-case letters, digits, "-" or "_" (max 63)'),
    type: z.literal('saml'),
    displayName: z.string().min(1),
    groupsPrefix: z.string().optional(),
    inviteOnly: z.boolean().optional(),
    requireMfa: z.boolean().optional(),
    allowedDomains: z.array(z.string()).optional(),
    allowedUsers: z.array(z.string()).optional(),
    allowedGroups: z.array(z.string()).optional(),
    idpMetadataFile: z.string().min(1).optional(),
    idpMetadataUrl: z.string().url().optional(),
    spEntityId: z.string().min(1).optional(),
    signing: z
      .object({ certFile: z.string().min(1), keyFile: z.string().min(1) })
      .strict()
      .optional(),
    attributes: z
      .object({ email: names.optional(), displayName: names.optional(), groups: names.optional() })
      .strict()
      .optional(),
    allowIdpInitiated: z.boolean().optional(),
    clockSkewSeconds: z.number().int().min(0).max(600).optional(),
    /** SAML-only additions (optional): */
    nameIdFormat: z.string().min(1).optional(),
    mfaAuthnContexts: z.array(z.string().min(1)).min(1).optional(),
    requestTtlSeconds: z.number().int().min(30).max(86_400).optional(),
    authnRequestBinding: z.enum(['HTTP-Redirect', 'HTTP-POST']).optional(),
  })
  .superRefine((c, ctx) => {
    if ((c.idpMetadataFile === undefined) === (c.idpMetadataUrl === undefined))
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['idpMetadataFile'],
        message: 'set exactly one of idpMetadataFile or idpMetadataUrl',
      });
  });

export type SamlProviderConfig = z.infer<typeof samlProviderConfigSchema>;

export const PERSISTENT_NAMEID = 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent';
export const DEFAULT_CLOCK_SKEW_SECONDS = 90;
export const DEFAULT_REQUEST_TTL_SECONDS = 900;

export interface SamlSettings {
  clockSkewMs: number;
  requestTtlMs: number;
  nameIdFormat: string;
  mfaAuthnContexts: string[];
  attributes: AttributeMapping;
  allowIdpInitiated: boolean;
  requireMfa: boolean;
  authnRequestBinding: 'HTTP-Redirect' | 'HTTP-POST';
}

const list = (v: string | string[] | undefined, d: readonly string[]): string[] =>
  v === undefined ? [...d] : typeof v === 'string' ? [v] : v;

/** The config with every default applied. */
export function samlSettings(c: SamlProviderConfig): SamlSettings {
  return {
    clockSkewMs: (c.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS) * 1000,
    requestTtlMs: (c.requestTtlSeconds ?? DEFAULT_REQUEST_TTL_SECONDS) * 1000,
    nameIdFormat: c.nameIdFormat ?? PERSISTENT_NAMEID,
    mfaAuthnContexts: c.mfaAuthnContexts ?? [...DEFAULT_MFA_AUTHN_CONTEXTS],
    attributes: {
      email: list(c.attributes?.email, DEFAULT_ATTRIBUTE_NAMES.email),
      displayName: list(c.attributes?.displayName, DEFAULT_ATTRIBUTE_NAMES.displayName),
      groups: list(c.attributes?.groups, DEFAULT_ATTRIBUTE_NAMES.groups),
    },
    allowIdpInitiated: c.allowIdpInitiated ?? false,
    requireMfa: c.requireMfa ?? false,
    authnRequestBinding: c.authnRequestBinding ?? 'HTTP-Redirect',
  };
}

/** Every problem of an entry as `providers.<index> (<id>): <path>: <message>` lines. */
export function samlConfigProblems(entry: unknown, where: string): string[] {
  const r = samlProviderConfigSchema.safeParse(entry);
  if (r.success) return [];
  return r.error.issues.map((i) => `${where}: ${i.path.join('.') || '(entry)'}: ${i.message}`);
}
