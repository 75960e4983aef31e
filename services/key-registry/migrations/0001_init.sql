-- key-registry schema: tailnets, nodes (machine key, node key, IPs, hostinfo), pre-auth keys, outbox (created by the migration runner).
CREATE SCHEMA IF NOT EXISTS key_registry;

CREATE TABLE key_registry.tailnets (
  id          serial PRIMARY KEY,
  name        text NOT NULL UNIQUE,
  domain      text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO key_registry.tailnets (name, domain) VALUES ('default', 'switchboard.internal');

CREATE TABLE key_registry.settings (
  key   text PRIMARY KEY,
  value text NOT NULL
);

-- Never reused: node ids come from this sequence only.
CREATE TABLE key_registry.nodes (
  id                 bigserial PRIMARY KEY,
  stable_id          text NOT NULL UNIQUE,
  tailnet_id         integer NOT NULL REFERENCES key_registry.tailnets(id),
  user_id            bigint,
  owner_key          text NOT NULL,
  machine_key        text NOT NULL,
  node_key           text NOT NULL UNIQUE,
  disco_key          text,
  ipv4               text NOT NULL,
  ipv6               text NOT NULL,
  hostname           text NOT NULL DEFAULT '',
  given_name         text NOT NULL,
  hostinfo           jsonb,
  endpoints          jsonb NOT NULL DEFAULT '[]'::jsonb,
  home_derp          integer NOT NULL DEFAULT 0,
  tags               text[] NOT NULL DEFAULT '{}',
  ephemeral          boolean NOT NULL DEFAULT false,
  key_expiry         timestamptz,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  last_seen          timestamptz,
  machine_authorized boolean NOT NULL DEFAULT true,
  cap_version        integer NOT NULL DEFAULT 0,
  routable_ips       text[] NOT NULL DEFAULT '{}',
  approved_routes    text[] NOT NULL DEFAULT '{}',
  auth_key_id        bigint,
  version            bigint NOT NULL DEFAULT 1,
  CONSTRAINT nodes_ipv4_unique UNIQUE (tailnet_id, ipv4),
  CONSTRAINT nodes_ipv6_unique UNIQUE (tailnet_id, ipv6),
  CONSTRAINT nodes_name_unique UNIQUE (tailnet_id, given_name),
  CONSTRAINT nodes_machine_owner_unique UNIQUE (tailnet_id, machine_key, owner_key)
);
CREATE INDEX nodes_machine_key_idx ON key_registry.nodes (machine_key);
CREATE INDEX nodes_user_idx ON key_registry.nodes (user_id);

-- Sequential IPv4 allocation: nextval never hands out the same number twice, even concurrently.
CREATE SEQUENCE key_registry.ipv4_seq START 1;

CREATE TABLE key_registry.preauth_keys (
  id          bigserial PRIMARY KEY,
  prefix      text NOT NULL UNIQUE,
  hash        text NOT NULL,
  tailnet_id  integer NOT NULL REFERENCES key_registry.tailnets(id),
  user_id     bigint NOT NULL,
  reusable    boolean NOT NULL,
  ephemeral   boolean NOT NULL,
  tags        text[] NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  used_count  integer NOT NULL DEFAULT 0
);
CREATE INDEX preauth_keys_user_idx ON key_registry.preauth_keys (user_id);

-- The outbox table is created by @switchboard/db migrate().
