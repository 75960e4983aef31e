-- Interactive (browser) logins in progress: the device that asked for a login URL, until a user is
-- attached to it or the entry expires. Shared by every replica; a restart or a Redis flush loses none.
CREATE TABLE key_registry.pending_logins (
  id            text PRIMARY KEY,
  tailnet_id    integer NOT NULL DEFAULT 1,
  machine_key   text NOT NULL,
  node_key      text NOT NULL,
  old_node_key  text,
  hostinfo      jsonb,
  ephemeral     boolean NOT NULL DEFAULT false,
  cap_version   integer NOT NULL DEFAULT 0,
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'completed')),
  user_id       bigint,
  node_id       bigint,
  completed_at  timestamptz
);
CREATE INDEX pending_logins_machine_idx ON key_registry.pending_logins (machine_key, node_key);
CREATE INDEX pending_logins_expiry_idx ON key_registry.pending_logins (expires_at);
