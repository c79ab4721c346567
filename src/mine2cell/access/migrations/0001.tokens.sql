-- Access tokens of the HTTP service. Only the SHA-256 of each token's secret is kept: a copy of
-- this file lets nobody in. A token is "m2c_<id>_<secret>"; the id finds the row, the secret is
-- compared by its hash in constant time.

CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    tier TEXT NOT NULL CHECK (tier IN ('read', 'hosted')),
    -- the key file the service signs with for this token (hosted tier only)
    key_name TEXT,
    label TEXT NOT NULL,
    secret_sha256 BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    CHECK ((tier = 'hosted') = (key_name IS NOT NULL))
);
