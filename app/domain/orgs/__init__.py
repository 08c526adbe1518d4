"""Orgs."""
