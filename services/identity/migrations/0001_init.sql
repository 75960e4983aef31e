-- identity schema: users (created by the CLI now, by SSO later), API keys, outbox (created by the migration runner).
CREATE SCHEMA IF NOT EXISTS identity;

CREATE TABLE identity.settings (
  key   text PRIMARY KEY,
  value text NOT NULL
);

CREATE TABLE identity.users (
  id              bigserial PRIMARY KEY,
  tailnet_id      integer NOT NULL DEFAULT 1,
  name            text NOT NULL,
  login_name      text NOT NULL,
  display_name    text NOT NULL DEFAULT '',
  email           text,
  profile_pic_url text,
  provider        text NOT NULL DEFAULT 'local',
  groups          text[] NOT NULL DEFAULT '{}',
  created_at      timestamptz NOT NULL DEFAULT now(),
  version         bigint NOT NULL DEFAULT 1,
  CONSTRAINT users_name_unique UNIQUE (tailnet_id, name)
);

CREATE TABLE identity.api_keys (
  id           bigserial PRIMARY KEY,
  prefix       text NOT NULL UNIQUE,
  hash         text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL,
  last_used_at timestamptz
);

-- The outbox table is created by @switchboard/db migrate().
