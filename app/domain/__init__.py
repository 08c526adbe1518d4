"""Tenancy features over the document store: orgs, API keys, provider credentials, bridges and
threads. Each folder holds its HTTP routes (``controllers``), wire Structs (``schemas``) and logic;
:mod:`junction.domain.services` builds the shared services once, at start-up."""
