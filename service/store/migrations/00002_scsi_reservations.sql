-- +goose Up
-- SCSI reservations (SPC-2 RESERVE and SPC-3 persistent reservations) of
-- an exported disk, as service/iscsi saves them: a JSON document per
-- target, written before the command that changed it is answered, so that
-- they survive a restart of bmid. They go with the target's row: when a
-- disk is deprovisioned its reservations are released.
CREATE TABLE scsi_reservations (
    iqn        TEXT    PRIMARY KEY REFERENCES targets(iqn) ON DELETE CASCADE ON UPDATE CASCADE,
    state      TEXT    NOT NULL,
    updated_at BIGINT  NOT NULL
);

-- +goose Down
DROP TABLE scsi_reservations;
