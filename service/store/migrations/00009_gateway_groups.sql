-- +goose Up
-- A gateway's group (the gateways that reach one provisioning network and
-- share its floating portal address), that portal, and the address of its
-- Ceph client, which the gateway that takes it over blocklists before
-- opening its disks' images.
ALTER TABLE gateways ADD COLUMN gateway_group TEXT NOT NULL DEFAULT '';
ALTER TABLE gateways ADD COLUMN portal TEXT NOT NULL DEFAULT '';
ALTER TABLE gateways ADD COLUMN ceph_client TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE gateways DROP COLUMN ceph_client;
ALTER TABLE gateways DROP COLUMN portal;
ALTER TABLE gateways DROP COLUMN gateway_group;
