-- Each version records its diff against the previous one (shown by `switchboard policy history`).
ALTER TABLE policy.versions ADD COLUMN diff text NOT NULL DEFAULT '';
