"""Stored Responses: POST /v1/responses and its state routes."""
