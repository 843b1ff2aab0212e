"""The domain: plain Python aggregates and rules. Imports nothing from infrastructure."""
