"""EIP-712 operations, signatures and signers."""
