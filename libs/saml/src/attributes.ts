/**
 * Attribute mapping: which SAML attributes carry email, display name and groups. Each is a list of
 * candidate names, matched against an attribute's Name or FriendlyName; the first present wins.
 * Defaults cover Okta (admin-defined Attribute Statements, conventionally `email`, `firstName`,
 * `lastName`, `displayName` and a Group Attribute Statement `groups`), Entra ID (claim URIs of
 * learn.microsoft.com "SAML token claims reference") and the eduPerson/LDAP OIDs.
 */
export interface SamlAttribute {
  name: string;
  friendlyName: string | null;
  values: string[];
}

export interface AttributeMapping {
  email: string[];
  displayName: string[];
  groups: string[];
}

const ENTRA = 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/';

export const DEFAULT_ATTRIBUTE_NAMES = {
  email: ['email', 'mail', `${ENTRA}emailaddress`, 'urn:oid:0.9.2342.19200300.100.1.3'],
  displayName: [
    'displayName',
    'http://schemas.microsoft.com/identity/claims/displayname',
    'urn:oid:2.16.840.1.113730.3.1.241',
    'cn',
    'urn:oid:2.5.4.3',
  ],
  groups: [
    'groups',
    'http://schemas.microsoft.com/ws/2008/06/identity/claims/groups',
    'memberOf',
    'isMemberOf',
    'urn:oid:1.3.6.1.4.1.5923.1.5.1.1',
  ],
} as const;

const GIVEN = ['firstName', 'givenName', `${ENTRA}givenname`, 'urn:oid:2.5.4.42'];
const SURNAME = ['lastName', 'sn', 'surname', `${ENTRA}surname`, 'urn:oid:2.5.4.4'];
/** Entra ID sends this instead of the groups when a user is in more than 150 groups. */
export const ENTRA_GROUPS_OVERAGE = 'http://schemas.microsoft.com/claims/groups.link';

export interface MappedAttributes {
  email?: string;
  displayName?: string;
  groups: string[];
  /** Entra's overage claim was present: the groups list is incomplete. */
  groupsOverage: boolean;
}

function find(attrs: readonly SamlAttribute[], candidates: readonly string[]): string[] | null {
  for (const c of candidates) {
    const hit = attrs.find((a) => a.name === c || a.friendlyName === c);
    if (hit) return hit.values.map((v) => v.trim()).filter((v) => v.length > 0);
  }
  return null;
}

export function mapAttributes(attrs: readonly SamlAttribute[], mapping: AttributeMapping): MappedAttributes {
  const out: MappedAttributes = { groups: [], groupsOverage: false };
  const email = find(attrs, mapping.email)?.[0];
  if (email) out.email = email;
  let display = find(attrs, mapping.displayName)?.[0];
  if (!display) {
    const parts = [find(attrs, GIVEN)?.[0], find(attrs, SURNAME)?.[0]].filter(Boolean);
    if (parts.length > 0) display = parts.join(' ');
  }
  if (display) out.displayName = display;
  out.groups = [...new Set(find(attrs, mapping.groups) ?? [])];
  out.groupsOverage = attrs.some((a) => a.name === ENTRA_GROUPS_OVERAGE);
  return out;
}
