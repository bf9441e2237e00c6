-- +goose Up
-- SQLite's form; PostgreSQL runs postgres/00012_boot_events.sql instead.
-- Each node's boot timeline (DHCP, TFTP, boot HTTP, iSCSI logins), kept
-- here rather than in one bmid's memory so that any gateway of a site
-- serves every node's timeline, and a restart loses none of it. Only
-- nodes with a boot config have one, and it goes with the boot config.
CREATE TABLE boot_events (
    id        INTEGER PRIMARY KEY,
    mac       TEXT    NOT NULL REFERENCES boot_configs(mac) ON DELETE CASCADE ON UPDATE CASCADE,
    at        INTEGER NOT NULL,
    step      TEXT    NOT NULL,
    client    TEXT    NOT NULL DEFAULT '',
    detail    TEXT    NOT NULL DEFAULT '',
    remote    TEXT    NOT NULL DEFAULT '',
    initiator TEXT    NOT NULL DEFAULT '',
    session   TEXT    NOT NULL DEFAULT '',
    gateway   TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX boot_events_mac ON boot_events (mac, at);

-- +goose Down
DROP TABLE boot_events;
