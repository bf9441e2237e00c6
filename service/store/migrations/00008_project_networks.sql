-- +goose Up
-- Per-project provisioning networks (boot.networks): the network of
-- bmid's configuration each project was given, by name (the HIL network
-- BMI created for it). A network belongs to one project at most; the
-- project keeps it until it is removed.
CREATE TABLE project_networks (
    project    TEXT    PRIMARY KEY,
    network    TEXT    NOT NULL UNIQUE,
    created_at BIGINT  NOT NULL
);

-- The audit log also records boot configs withheld on the provisioning
-- networks (kind 'boot': a script refused, a node asked for on another
-- project's network). The table is rebuilt with the wider check, its
-- column definitions as in 00003.
CREATE TABLE audit_new (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       INTEGER NOT NULL,
    kind     TEXT    NOT NULL CHECK (kind IN ('api', 'iscsi', 'boot')),
    actor    TEXT    NOT NULL,
    source   TEXT    NOT NULL,
    action   TEXT    NOT NULL,
    object   TEXT    NOT NULL,
    outcome  TEXT    NOT NULL,
    detail   TEXT    NOT NULL DEFAULT ''
);
INSERT INTO audit_new (id, at, kind, actor, source, action, object, outcome, detail)
    SELECT id, at, kind, actor, source, action, object, outcome, detail FROM audit;
DROP TABLE audit;
ALTER TABLE audit_new RENAME TO audit;
CREATE INDEX audit_at ON audit (at);

-- +goose Down
CREATE TABLE audit_old (
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
INSERT INTO audit_old (id, at, kind, actor, source, action, object, outcome, detail)
    SELECT id, at, kind, actor, source, action, object, outcome, detail FROM audit WHERE kind <> 'boot';
DROP TABLE audit;
ALTER TABLE audit_old RENAME TO audit;
CREATE INDEX audit_at ON audit (at);
DROP TABLE project_networks;
