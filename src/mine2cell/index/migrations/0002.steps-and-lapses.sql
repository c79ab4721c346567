-- Schema 2, for fast provenance queries:
-- * each consumption names the step that produced its lot (NULL for a commissioned lot), so an
--   upstream walk goes from step to step through one index instead of lot by lot;
-- * custody events are indexed with their kind and position, and the lots in transit (last
--   custody event a shipment) are kept in a table of their own;
-- * lapses: events whose signer held no roles or no valid certification at the time, found once
--   when the event is stored (a fact of the chain that later records never change).
-- The new column and table are filled as logs are stored, so the index starts again from the
-- ledger's first block: the next `mine2cell sync` reads the chain again.

DELETE FROM checkpoint;
DELETE FROM blocks;
DELETE FROM participant_changes;
DELETE FROM certifications;
DELETE FROM commissions;
DELETE FROM steps;
DELETE FROM consumptions;
DELETE FROM productions;
DELETE FROM handoffs;
DELETE FROM corrections;
DELETE FROM attestations;

ALTER TABLE consumptions ADD COLUMN producer BLOB;
DROP INDEX consumptions_by_event;
CREATE INDEX consumptions_by_event ON consumptions (event_id, producer);

DROP INDEX handoffs_by_lot;
CREATE INDEX handoffs_by_lot ON handoffs (lot, block_number, log_index, kind);

-- Lots in transit: each lot whose last custody event is a shipment, with that shipment. Kept
-- as custody events are stored and rolled back.
CREATE TABLE in_transit (
    lot BLOB PRIMARY KEY,
    tx_hash BLOB NOT NULL, log_index INTEGER NOT NULL, block_number INTEGER NOT NULL
);

CREATE TABLE lapses (
    tx_hash BLOB NOT NULL, log_index INTEGER NOT NULL, block_number INTEGER NOT NULL,
    event_id BLOB NOT NULL,
    code TEXT NOT NULL
        CHECK (code IN ('signer-not-accredited', 'certification-missing', 'certification-expired')),
    kind TEXT NOT NULL,
    lot BLOB, -- the lot of a commissioning or custody event; NULL for a step
    actor TEXT NOT NULL,
    PRIMARY KEY (tx_hash, log_index, code)
);
CREATE INDEX lapses_by_lot ON lapses (lot);
CREATE INDEX lapses_by_event ON lapses (event_id);

-- Passport reports as served: the provenance engine's JSON report of a passport, computed on
-- first request and kept until an event that changes it is stored (an attestation of the
-- passport, a custody event on a lot of its chain, any correction) or the index rolls back.
-- ``variant`` is what else the report depends on (the high-risk country list). ``epoch``
-- counts invalidations, so that a report computed from a snapshot that an invalidation has
-- since overtaken is not kept.
CREATE TABLE reports (
    passport BLOB NOT NULL,
    variant TEXT NOT NULL,
    document BLOB NOT NULL,
    PRIMARY KEY (passport, variant)
);
CREATE TABLE report_epoch (id INTEGER PRIMARY KEY CHECK (id = 1), epoch INTEGER NOT NULL);
INSERT INTO report_epoch (id, epoch) VALUES (1, 0);
