"""The semantic cache's near-miss guard (no model needed): paraphrases pass; negations, words of
opposite polarity, numbers and named entities that differ are refused."""

from __future__ import annotations

import pytest

from junction.middleware.semantic_cache.guard import refusal


@pytest.mark.parametrize("question, cached", [
    ("How do I reset my password?", "How can I reset my password?"),
    ("What's the way to reset my password?", "How do I reset my password?"),
    ("What is the capital of France?", "Which city is the capital of France?"),
    ("How do I install Junction on Ubuntu?", "How can Junction be installed on Ubuntu?"),
    ("Refunds within 3 days?", "Can I get a refund within 3 days?"),
    ("How do I enable two-factor authentication?", "How can I enable two-factor authentication?"),
])
def test_paraphrases_pass(question, cached):
    assert refusal(question, cached) is None


@pytest.mark.parametrize("question, cached, reason", [
    ("How do I disable two-factor authentication?", "How do I enable two-factor authentication?", "negation"),
    ("How do I turn off dark mode?", "How do I turn on dark mode?", "negation"),
    ("How do I unlock my account?", "How do I lock my account?", "negation"),
    ("Is the Zephyr-9 not dishwasher safe?", "Is the Zephyr-9 dishwasher safe?", "negation"),
    ("Why doesn't the build pass?", "Why does the build pass?", "negation"),
    ("Can I get a refund within 30 days?", "Can I get a refund within 3 days?", "number"),
    ("Can I get a refund within three days?", "Can I get a refund within 30 days?", "number"),
    ("What is the capital of Germany?", "What is the capital of France?", "entity"),
    ("How do I install Junction on Debian?", "How do I install Junction on Ubuntu?", "entity"),
    ("Does GPT-4o support vision?", "Does Claude support vision?", "entity"),
])
def test_near_misses_are_refused(question, cached, reason):
    assert refusal(question, cached) == reason
