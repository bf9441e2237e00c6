-- +goose Up
-- SQLite's form; PostgreSQL runs postgres/00003_audit.sql instead.
-- The audit log: every state-changing API call and every iSCSI login,
-- who, from where, what and the outcome ([security]).
CREATE TABLE audit (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       INTEGER NOT NULL,
    kind     TEXT    NOT NULL CHECK (kind IN ('api', 'iscsi')),
    actor    TEXT    NOT NULL,
    source   TEXT    NOT NULL,
    action   TEXT    NOT NULL,
    object   TEXT    NOT NULL,
    outcome  TEXT    NOT NULL,
    detail   TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_at ON audit (at);

-- +goose Down
DROP TABLE audit;
