-- +goose Up
-- PostgreSQL's form of ../00008_project_networks.sql: the same table, and
-- the audit kind's check widened in place (SQLite has to rebuild the
-- table for it).
CREATE TABLE project_networks (
    project    TEXT    PRIMARY KEY,
    network    TEXT    NOT NULL UNIQUE,
    created_at BIGINT  NOT NULL
);
ALTER TABLE audit DROP CONSTRAINT audit_kind_check;
ALTER TABLE audit ADD CONSTRAINT audit_kind_check CHECK (kind IN ('api', 'iscsi', 'boot'));

-- +goose Down
DELETE FROM audit WHERE kind = 'boot';
ALTER TABLE audit DROP CONSTRAINT audit_kind_check;
ALTER TABLE audit ADD CONSTRAINT audit_kind_check CHECK (kind IN ('api', 'iscsi'));
DROP TABLE project_networks;
