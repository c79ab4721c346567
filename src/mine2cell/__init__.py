"""mine2cell: a blockchain traceability ledger for battery raw materials.

Solidity contracts record custody hand-offs and transformations of mineral lots
from mine to cell; this package signs and submits those events, indexes them and
rebuilds the provenance of any battery passport.
"""

__version__ = "0.1.0"
