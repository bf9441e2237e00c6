-- +goose Up
-- A gateway's own portal addresses (gateway.addresses, separated by
-- spaces), one on each network its nodes log in from: a login at the
-- group's floating portal for a disk placed on this gateway is redirected
-- to the one on the network the login came in on.
ALTER TABLE gateways ADD COLUMN addresses TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE gateways DROP COLUMN addresses;
