-- The relay's outbox: every accepted operation, the batches it travelled in and the transactions
-- that carried each batch (a batch has several when a stuck transaction is replaced).

CREATE TABLE batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    relayer TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    gas INTEGER NOT NULL,
    size INTEGER NOT NULL,
    -- sending: a transaction is signed and stored (maybe sent); mined: settled by its receipt;
    -- dropped: no transaction of it can be mined any more; reverted: mined but reverted whole.
    state TEXT NOT NULL CHECK (state IN ('sending', 'mined', 'dropped', 'reverted')),
    tx_hash BLOB,
    block_number INTEGER,
    block_hash BLOB,
    gas_used INTEGER,
    note TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX batches_by_state ON batches (state, id);

CREATE TABLE operations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id BLOB NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    nonce TEXT NOT NULL,
    deadline INTEGER NOT NULL,
    document TEXT NOT NULL,
    calldata BLOB NOT NULL,
    gas_bound INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'submitted', 'confirmed', 'rejected')),
    batch_id INTEGER REFERENCES batches (id),
    -- Where the operation was recorded (its batch's transaction, or another relayer's).
    tx_hash BLOB,
    block_number INTEGER,
    block_hash BLOB,
    error TEXT,
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    accepted_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX operations_by_state ON operations (state, seq);
CREATE INDEX operations_by_batch ON operations (batch_id);
-- A signer's nonce can be recorded once: a second operation with a nonce held by one not rejected
-- is refused at the door rather than rejected by the ledger later.
CREATE UNIQUE INDEX operations_nonce ON operations (actor, nonce) WHERE state != 'rejected';

CREATE TABLE batch_operations (
    batch_id INTEGER NOT NULL REFERENCES batches (id),
    position INTEGER NOT NULL,
    event_id BLOB NOT NULL,
    PRIMARY KEY (batch_id, position)
);

CREATE TABLE transactions (
    tx_hash BLOB PRIMARY KEY,
    batch_id INTEGER NOT NULL REFERENCES batches (id),
    raw BLOB NOT NULL,
    max_fee TEXT NOT NULL,
    priority_fee TEXT NOT NULL,
    signed_at REAL NOT NULL,
    sent_at REAL
);
CREATE INDEX transactions_by_batch ON transactions (batch_id, signed_at);
