"""The relay: outbox -> simulate -> batch -> submit -> confirm."""
