"""Integrations with systems outside SLRT: partner agencies over Kafka (ADR 0007)."""
