"""The index: the ledger's logs followed into a local store, reorg-aware."""
