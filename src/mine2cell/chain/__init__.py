"""Talking to the ledger's chain: connecting, deploying and the compiled artifacts."""
