-- SAML service provider state (services/identity/src/login/saml).
-- saml_requests: outstanding AuthnRequest IDs, each bound to one pending login; consumed once by
-- the ACS (DELETE ... RETURNING), expired ones are refused and purged.
CREATE TABLE identity.saml_requests (
  request_id  text PRIMARY KEY,
  provider_id text NOT NULL,
  login_id    text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL
);
CREATE INDEX saml_requests_expires ON identity.saml_requests (expires_at);

-- saml_assertions_seen: IDs of assertions already accepted, kept until they expire, so a replay
-- is refused even after a restart or a Redis flush.
CREATE TABLE identity.saml_assertions_seen (
  provider_id  text NOT NULL,
  assertion_id text NOT NULL,
  seen_at      timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL,
  PRIMARY KEY (provider_id, assertion_id)
);
CREATE INDEX saml_assertions_seen_expires ON identity.saml_assertions_seen (expires_at);
