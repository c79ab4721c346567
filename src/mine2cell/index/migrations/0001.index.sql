-- The ledger's logs, one table per kind of event. Every row is keyed by (tx_hash, log_index) and
-- carries its block number, so a reorganisation rolls back with one DELETE per table. Quantities,
-- footprints and validity times are uint96/uint64/uint256 on chain: they are stored as decimal
-- TEXT, because SQLite integers stop at 2^63 and would turn larger values into floats.

CREATE TABLE checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    block_number INTEGER NOT NULL,
    block_hash BLOB NOT NULL,
    updated_at REAL NOT NULL
);

-- Blocks that hold indexed logs, and checkpoint blocks: their hashes find the fork point.
CREATE TABLE blocks (
    number INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    timestamp INTEGER NOT NULL
);

CREATE TABLE participant_changes (
    tx_hash BLOB NOT NULL, log_index INTEGER NOT NULL, block_number INTEGER NOT NULL,
    event_id BLOB NOT NULL,
    account TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('accredit', 'revoke')),
    roles INTEGER NOT NULL,
    facility BLOB,
    country TEXT,
    PRIMARY KEY (tx_hash, log_index)
);
CREATE INDEX participant_changes_by_account ON participant_changes (account, block_number, log_index);

CREATE TABLE certifications (
    tx_hash BLOB NOT NULL, log_index INTEGER NOT NULL, block_number INTEGER NOT NULL,
    event_id BLOB NOT NULL,
    account TEXT NOT NULL,
    scheme BLOB NOT NULL,
    valid_until TEXT NOT NULL,
    document_hash BLOB NOT NULL,
    PRIMARY KEY (tx_hash, log_index)
);
CREATE INDEX certifications_by_account ON certifications (account, block_number, log_index);

CREATE TABLE commissions (
    tx_hash BLOB NOT NULL, log_index INTEGER NOT NULL, block_number INTEGER NOT NULL,
    event_id BLOB NOT NULL,
    lot BLOB NOT NULL UNIQUE,
    actor TEXT NOT NULL,
    material INTEGER NOT NULL,
    quantity TEXT NOT NULL,
    feedstock INTEGER NOT NULL,
    footprint TEXT NOT NULL,
    document_hash BLOB NOT NULL,
    facility BLOB NOT NULL,
    country TEXT NOT NULL,
    PRIMARY KEY (tx_hash, log_index)
);
CREATE INDEX commissions_by_facility ON commissions (facility);

-- Transformations and passport bindings (the headers; inputs and outputs below).
CREATE TABLE steps (
    tx_hash BLOB NOT NULL, log_index INTEGER NOT NULL, block_number INTEGER NOT NULL,
    event_id BLOB NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('transform', 'bind')),
    actor TEXT NOT NULL,
    inputs INTEGER NOT NULL,
    outputs INTEGER NOT NULL,
    footprint TEXT NOT NULL,
    passport BLOB UNIQUE,
    document_hash BLOB,
    PRIMARY KEY (tx_hash, log_index)
);

CREATE TABLE consumptions (
    tx_hash BLOB NOT NULL, log_index INTEGER NOT NULL, block_number INTEGER NOT NULL,
    event_id BLOB NOT NULL,
    lot BLOB NOT NULL,
    actor TEXT NOT NULL,
    quantity TEXT NOT NULL,
    remaining TEXT NOT NULL,
    PRIMARY KEY (tx_hash, log_index)
);
CREATE INDEX consumptions_by_event ON consumptions (event_id);
CREATE INDEX consumptions_by_lot ON consumptions (lot);

CREATE TABLE productions (
    tx_hash BLOB NOT NULL, log_index INTEGER NOT NULL, block_number INTEGER NOT NULL,
    event_id BLOB NOT NULL,
    lot BLOB NOT NULL UNIQUE,
    actor TEXT NOT NULL,
    material INTEGER NOT NULL,
    quantity TEXT NOT NULL,
    document_hash BLOB NOT NULL,
    PRIMARY KEY (tx_hash, log_index)
);
CREATE INDEX productions_by_event ON productions (event_id);

CREATE TABLE handoffs (
    tx_hash BLOB NOT NULL, log_index INTEGER NOT NULL, block_number INTEGER NOT NULL,
    event_id BLOB NOT NULL,
    lot BLOB NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('ship', 'receive', 'reject', 'recall')),
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    PRIMARY KEY (tx_hash, log_index)
);
CREATE INDEX handoffs_by_lot ON handoffs (lot, block_number, log_index);

CREATE TABLE corrections (
    tx_hash BLOB NOT NULL, log_index INTEGER NOT NULL, block_number INTEGER NOT NULL,
    event_id BLOB NOT NULL,
    target BLOB NOT NULL,
    actor TEXT NOT NULL,
    reason INTEGER NOT NULL,
    corrective BLOB NOT NULL, -- concatenated 32-byte event ids
    PRIMARY KEY (tx_hash, log_index)
);
CREATE INDEX corrections_by_target ON corrections (target);

CREATE TABLE attestations (
    tx_hash BLOB NOT NULL, log_index INTEGER NOT NULL, block_number INTEGER NOT NULL,
    event_id BLOB NOT NULL,
    passport BLOB NOT NULL,
    auditor TEXT NOT NULL,
    verdict INTEGER NOT NULL,
    report_hash BLOB NOT NULL,
    PRIMARY KEY (tx_hash, log_index)
);
CREATE INDEX attestations_by_passport ON attestations (passport);
