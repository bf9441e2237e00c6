-- +goose Up
-- PostgreSQL's form of ../00010_boot_ownership.sql (see there): attached
-- is a BOOLEAN like owns_disk, and the columns drop in place.
ALTER TABLE boot_configs ADD COLUMN owned_disk_id BIGINT REFERENCES images(id) ON DELETE SET NULL;
ALTER TABLE boot_configs ADD COLUMN attached BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE boot_configs SET owned_disk_id = disk_id, attached = owns_disk WHERE owns_disk;

-- +goose Down
ALTER TABLE boot_configs DROP COLUMN attached;
ALTER TABLE boot_configs DROP COLUMN owned_disk_id;
