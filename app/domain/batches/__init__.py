"""Batches of queued jobs: ``/api/v1/batches`` and the OpenAI Files and Batch APIs."""
