"""SLRT: event-sourced case management for the integrated social-protection referral system."""
