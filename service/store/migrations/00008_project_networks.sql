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

-- +goose Down
DROP TABLE project_networks;
