-- policy-compiler schema: every version of each tailnet's policy document, newest wins.
CREATE SCHEMA IF NOT EXISTS policy;

CREATE TABLE policy.versions (
  tailnet_id  integer NOT NULL,
  version     integer NOT NULL,
  text        text,
  author      text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tailnet_id, version)
);

CREATE TABLE IF NOT EXISTS policy.outbox (
  id           bigserial PRIMARY KEY,
  subject      text NOT NULL,
  payload      jsonb NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  published_at timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_unpublished_idx ON policy.outbox (id) WHERE published_at IS NULL;
