-- Browser login: users keyed by (provider, subject), disabled users, per-attempt OIDC state, the
-- browser-bound login sessions and the confirmations that attach a device. All durable, so a
-- restart or another replica finishes what one started.
ALTER TABLE identity.users
  ADD COLUMN provider_id text,
  ADD COLUMN subject     text,
  ADD COLUMN disabled    boolean NOT NULL DEFAULT false;
CREATE UNIQUE INDEX users_provider_subject_unique ON identity.users (provider_id, subject)
  WHERE provider_id IS NOT NULL;

-- One row per redirect to an OIDC provider: consumed exactly once by the callback.
CREATE TABLE identity.oidc_attempts (
  state         text PRIMARY KEY,
  provider_id   text NOT NULL,
  login_id      text NOT NULL,
  nonce         text NOT NULL,
  code_verifier text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  used_at       timestamptz
);
CREATE INDEX oidc_attempts_expiry_idx ON identity.oidc_attempts (expires_at);

-- A browser that opened a login URL: the cookie it got (hashed) binds the IdP's return to it.
CREATE TABLE identity.login_sessions (
  id            text PRIMARY KEY,
  login_id      text NOT NULL,
  browser_hash  text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL
);
CREATE INDEX login_sessions_login_idx ON identity.login_sessions (login_id);

-- The IdP returned and the user is known: the device waits for the person's confirmation.
CREATE TABLE identity.login_confirmations (
  id            text PRIMARY KEY,
  login_id      text NOT NULL,
  user_id       bigint NOT NULL,
  browser_hash  text NOT NULL,
  csrf          text NOT NULL,
  callback_hash text NOT NULL UNIQUE,
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  completed_at  timestamptz,
  node_id       bigint
);
