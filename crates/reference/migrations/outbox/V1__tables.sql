-- Write model and the outbox the relay publishes from (the read model is in Redis).
CREATE TABLE accounts (
    id text PRIMARY KEY,
    balance bigint NOT NULL,
    version bigint NOT NULL
);
CREATE TABLE outbox (
    seq bigserial PRIMARY KEY,
    account text NOT NULL,
    version bigint NOT NULL,
    delta bigint NOT NULL,
    ref text,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    sent_at timestamptz
);
CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;
