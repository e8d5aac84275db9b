-- The event store (unique stream version: optimistic concurrency), snapshots, the read
-- model and the projector's checkpoint (moved in the same transaction as the read model).
CREATE TABLE events (
    seq bigserial PRIMARY KEY,
    stream text NOT NULL,
    version bigint NOT NULL,
    delta bigint NOT NULL,
    ref text,
    at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream, version)
);
CREATE TABLE snapshots (
    stream text PRIMARY KEY,
    version bigint NOT NULL,
    balance bigint NOT NULL
);
CREATE TABLE account_views (
    id text PRIMARY KEY,
    balance bigint NOT NULL,
    version bigint NOT NULL,
    refs text[] NOT NULL DEFAULT '{}'
);
CREATE TABLE checkpoints (
    projector text PRIMARY KEY,
    seq bigint NOT NULL
);
INSERT INTO checkpoints VALUES ('views', 0);
