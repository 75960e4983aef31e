/** The zod schema of a `type: saml` provider entry (owned here; the login flow hands entries to it). */
export { samlProviderConfigSchema, samlConfigProblems, type SamlProviderConfig } from '@switchboard/saml';
