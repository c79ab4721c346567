"""Provenance of battery passports: pure functions over the stored graph (no I/O)."""
