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

-- The outbox table is created by @switchboard/db migrate().
