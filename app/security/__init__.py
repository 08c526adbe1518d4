"""Secrets handling: API key generation/verification and encryption of stored credentials."""
