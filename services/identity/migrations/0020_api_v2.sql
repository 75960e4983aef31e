-- API v2 (issue 13): roles on users; API tokens owned by a user and OAuth clients (both in
-- api_keys); OAuth access tokens; per-tailnet DNS and settings; the hash-chained audit log.
ALTER TABLE identity.users
  ADD COLUMN role text NOT NULL DEFAULT 'member'
    CHECK (role IN ('owner', 'admin', 'network-admin', 'it-admin', 'auditor', 'member'));

-- kind 'api': an API access token acting with its owner's role (no owner = created on the host
-- with the CLI: acts as owner). kind 'client': an OAuth client acting with its scopes.
ALTER TABLE identity.api_keys
  ADD COLUMN kind        text NOT NULL DEFAULT 'api' CHECK (kind IN ('api', 'client')),
  ADD COLUMN tailnet_id  integer NOT NULL DEFAULT 1,
  ADD COLUMN user_id     bigint REFERENCES identity.users(id) ON DELETE CASCADE,
  ADD COLUMN scopes      text[] NOT NULL DEFAULT '{}',
  ADD COLUMN tags        text[] NOT NULL DEFAULT '{}',
  ADD COLUMN description text NOT NULL DEFAULT '',
  ADD COLUMN updated_at  timestamptz NOT NULL DEFAULT now(),
  ADD COLUMN revoked_at  timestamptz;

-- Client-credentials access tokens (one hour), stored as HMAC like the API keys.
CREATE TABLE identity.oauth_tokens (
  id          bigserial PRIMARY KEY,
  prefix      text NOT NULL UNIQUE,
  hash        text NOT NULL,
  client_id   bigint NOT NULL REFERENCES identity.api_keys(id) ON DELETE CASCADE,
  scopes      text[] NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL
);
CREATE INDEX oauth_tokens_expires_idx ON identity.oauth_tokens (expires_at);

-- DNS as the API sets it; published as events.v1.tailnet-dns-upserted to every map.
CREATE TABLE identity.tailnet_dns (
  tailnet_id   integer PRIMARY KEY,
  nameservers  text[] NOT NULL DEFAULT '{}',
  search_paths text[] NOT NULL DEFAULT '{}',
  magic_dns    boolean NOT NULL DEFAULT true,
  split_dns    jsonb NOT NULL DEFAULT '{}'::jsonb,
  version      bigint NOT NULL DEFAULT 1
);

CREATE TABLE identity.tailnet_settings (
  tailnet_id integer PRIMARY KEY,
  settings   jsonb NOT NULL,
  version    bigint NOT NULL DEFAULT 1
);

-- Append-only, hash-chained: hash = sha256(prev_hash || canonical row text); see audit/audit.chain.ts.
CREATE TABLE identity.audit_log (
  id          bigserial PRIMARY KEY,
  tailnet_id  integer NOT NULL,
  at          timestamptz NOT NULL DEFAULT now(),
  actor       text NOT NULL,
  actor_role  text NOT NULL,
  action      text NOT NULL,
  target      text NOT NULL,
  before      jsonb,
  after       jsonb,
  outcome     text NOT NULL,
  source      text NOT NULL DEFAULT '',
  request_id  text NOT NULL DEFAULT '',
  prev_hash   text NOT NULL,
  hash        text NOT NULL
);
CREATE INDEX audit_log_tailnet_at_idx ON identity.audit_log (tailnet_id, at);

CREATE FUNCTION identity.audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'identity.audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON identity.audit_log
  FOR EACH ROW EXECUTE FUNCTION identity.audit_log_append_only();
