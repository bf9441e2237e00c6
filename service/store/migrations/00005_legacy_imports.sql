-- +goose Up
-- What `bmid migrate-legacy` brought over from an original BMI site: each
-- project and image row of the original's database (by its id there) and
-- the row it became here. A second run skips what is recorded; a state
-- with rows not recorded here was not made by the migration, and the
-- migration refuses it.
CREATE TABLE legacy_imports (
    kind       TEXT    NOT NULL CHECK (kind IN ('project', 'image')),
    legacy_id  BIGINT  NOT NULL,
    our_id     BIGINT  NOT NULL,
    source     TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    PRIMARY KEY (kind, legacy_id)
);

-- +goose Down
DROP TABLE legacy_imports;
