-- Write model, the event log (one row per change, unique per account and version) and the
-- read model, which commits in the same transaction as the command.
CREATE TABLE accounts (
    id text PRIMARY KEY,
    balance bigint NOT NULL,
    version bigint NOT NULL
);
CREATE TABLE events (
    seq bigserial PRIMARY KEY,
    account text NOT NULL,
    version bigint NOT NULL,
    delta bigint NOT NULL,
    ref text,
    at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account, version)
);
CREATE TABLE account_views (
    id text PRIMARY KEY,
    balance bigint NOT NULL,
    version bigint NOT NULL,
    refs text[] NOT NULL DEFAULT '{}'
);
