-- +goose Up
-- Several bmid gateways on one (PostgreSQL) database ([gateways]).
--
-- A gateway holds a lease on its row, renewed while it lives; a row whose
-- lease has expired belongs to a dead gateway, and the first live one to
-- delete it takes over its unfinished operations and its locks (exactly
-- once: only one DELETE of the row succeeds).
CREATE TABLE gateways (
    id         TEXT    PRIMARY KEY,
    started_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL
);

-- The locks of images and nodes that operations hold, across processes.
-- token is the acquisition's (released with it), or 'takeover' once a live
-- gateway has taken the row over from a dead one, until it has recovered
-- the dead one's operations.
CREATE TABLE locks (
    name     TEXT    PRIMARY KEY,
    holder   TEXT    NOT NULL,
    gateway  TEXT    NOT NULL,
    token    TEXT    NOT NULL,
    taken_at BIGINT  NOT NULL
);
CREATE INDEX locks_gateway ON locks (gateway);

-- Which gateway runs (or last ran) an operation; '' on SQLite, where one
-- bmid owns the database.
ALTER TABLE operations ADD COLUMN gateway TEXT NOT NULL DEFAULT '';
CREATE INDEX operations_gateway ON operations (gateway);

-- +goose Down
DROP INDEX operations_gateway;
ALTER TABLE operations DROP COLUMN gateway;
DROP TABLE locks;
DROP TABLE gateways;
