-- +goose Up
-- Where each exported disk is served when several bmid gateways share the
-- database ([gateways]): a disk's target is placed on one gateway of a
-- group, which alone exports it. want is 'export', or 'unexport' once an
-- operation on another gateway asked the owner to stop exporting it (the
-- owner then unexports it and deletes the row); move_to names the gateway
-- the disk is being moved to (the owner unexports it, then hands the row
-- over); exported_at is when the owner last exported it (0: not yet). A take-over moves a dead gateway's
-- rows to the gateway that takes it over.
CREATE TABLE placements (
    iqn           TEXT    PRIMARY KEY,
    gateway_group TEXT    NOT NULL,
    gateway       TEXT    NOT NULL,
    want          TEXT    NOT NULL,
    move_to       TEXT    NOT NULL,
    exported_at   BIGINT  NOT NULL,
    placed_at     BIGINT  NOT NULL
);
CREATE INDEX placements_gateway ON placements (gateway);

-- +goose Down
DROP INDEX placements_gateway;
DROP TABLE placements;
