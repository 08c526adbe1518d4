"""Queued jobs: records, the service that submits and runs them, webhooks, batches and files."""
