-- +goose Up
-- What a node's boot config owns beyond the disk it boots, so that dpro
-- and clear-boot undo exactly what pro and set-boot did:
--
-- owned_disk_id: the disk pro made for the node (named after it), kept
-- while the node boots another disk, so dpro deletes it whatever disk the
-- node boots then; NULL when pro made none. Deleting that disk sets it
-- NULL (ON DELETE SET NULL, in the same statement as the row's deletion),
-- so dpro never deletes a later disk that reuses its name or id.
--
-- attached: BMI attached the node's NIC to the provisioning network (pro,
-- or set-boot on a NIC that was not attached), so dpro and clear-boot
-- detach it.
--
-- owns_disk stays, written as owned_disk_id = disk_id (for a bmid before
-- this migration).
ALTER TABLE boot_configs ADD COLUMN owned_disk_id INTEGER REFERENCES images(id) ON DELETE SET NULL;
ALTER TABLE boot_configs ADD COLUMN attached INTEGER NOT NULL DEFAULT 0;
UPDATE boot_configs SET owned_disk_id = disk_id, attached = owns_disk WHERE owns_disk;

-- +goose Down
-- SQLite cannot drop a column that references another table: the table is
-- rebuilt with 00001's columns.
CREATE TABLE boot_configs_old (
    node       TEXT    PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    disk_id    INTEGER NOT NULL REFERENCES images(id),
    nic        TEXT    NOT NULL,
    mac        TEXT    NOT NULL UNIQUE,
    owns_disk  INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);
INSERT INTO boot_configs_old (node, project_id, disk_id, nic, mac, owns_disk, updated_at)
    SELECT node, project_id, disk_id, nic, mac, owns_disk, updated_at FROM boot_configs;
DROP TABLE boot_configs;
ALTER TABLE boot_configs_old RENAME TO boot_configs;
