-- +goose Up
-- SQLite's form; PostgreSQL runs postgres/00001_init.sql instead (the same
-- tables; identity columns for AUTOINCREMENT).
-- Projects mirror HIL projects by name.
CREATE TABLE projects (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

-- Images, snapshots and disks share one table (and one name space per
-- project), as in the original: a disk or snapshot names its parent image.
CREATE TABLE images (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    name       TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('image', 'snapshot', 'disk')),
    parent_id  INTEGER REFERENCES images(id),
    ceph_name  TEXT    NOT NULL UNIQUE,
    size       INTEGER NOT NULL DEFAULT 0,
    public     INTEGER NOT NULL DEFAULT 0,
    state      TEXT    NOT NULL CHECK (state IN ('pending', 'ready', 'deleting')),
    op_id      TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (project_id, name)
);
CREATE INDEX images_parent ON images(parent_id);

-- iSCSI export of a disk.
CREATE TABLE targets (
    disk_id     INTEGER PRIMARY KEY REFERENCES images(id),
    iqn         TEXT    NOT NULL UNIQUE,
    chap_user   TEXT    NOT NULL,
    chap_secret TEXT    NOT NULL,
    initiators  TEXT    NOT NULL DEFAULT '[]',
    created_at  INTEGER NOT NULL
);

-- Which disk a node boots.
CREATE TABLE boot_configs (
    node       TEXT    PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    disk_id    INTEGER NOT NULL REFERENCES images(id),
    nic        TEXT    NOT NULL,
    mac        TEXT    NOT NULL UNIQUE,
    owns_disk  INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);

-- DHCP leases handed out by bmid's own DHCP server.
CREATE TABLE leases (
    mac        TEXT    PRIMARY KEY,
    ip         TEXT    NOT NULL UNIQUE,
    hostname   TEXT    NOT NULL DEFAULT '',
    expires_at INTEGER NOT NULL
);

-- The operation journal: every multi-step operation writes its plan and
-- each step's progress here before moving on.
CREATE TABLE operations (
    id          TEXT    PRIMARY KEY,
    kind        TEXT    NOT NULL,
    project     TEXT    NOT NULL DEFAULT '',
    target      TEXT    NOT NULL DEFAULT '',
    principal   TEXT    NOT NULL DEFAULT '',
    state       TEXT    NOT NULL CHECK (state IN ('running', 'done', 'failed', 'rolled_back')),
    data        TEXT    NOT NULL DEFAULT '{}',
    error       TEXT    NOT NULL DEFAULT '',
    progress    REAL    NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX operations_state ON operations(state);

CREATE TABLE op_steps (
    op_id  TEXT    NOT NULL REFERENCES operations(id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    name   TEXT    NOT NULL,
    state  TEXT    NOT NULL CHECK (state IN ('doing', 'done', 'undoing', 'undone')),
    at     INTEGER NOT NULL,
    PRIMARY KEY (op_id, seq)
);

-- +goose Down
DROP TABLE op_steps;
DROP TABLE operations;
DROP TABLE leases;
DROP TABLE boot_configs;
DROP TABLE targets;
DROP TABLE images;
DROP TABLE projects;
