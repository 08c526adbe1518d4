"""``[limits]`` is validated at start-up like every table: a bad value names its key."""

from __future__ import annotations

import pytest

from junction.errors import ConfigError
from junction.settings import settings_from_mapping


def test_defaults():
    limits = settings_from_mapping({}).limits
    assert (limits.max_json_depth, limits.max_messages, limits.max_model_chars) == (64, 2048, 256)


@pytest.mark.parametrize(("table", "message"), [
    ({"max_json_depth": 0}, "limits.max_json_depth: must be at least 1"),
    ({"max_header_bytes": 100}, "limits.max_header_bytes: must be at least 8192"),
    ({"body_read_timeout_seconds": 0}, "limits.body_read_timeout_seconds: must be > 0"),
    ({"max_prompt_chars": "big"}, "limits.max_prompt_chars: Expected `int`, got `str`"),
    ({"max_depth": 3}, "limits.max_depth: unknown key"),
])
def test_bad_values_name_their_key(table, message):
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping({"limits": table})
    assert message in raised.value.message


def test_granian_http1_settings_come_from_limits():
    from junction.granian_config import http1_settings

    settings = settings_from_mapping({"limits": {"header_read_timeout_seconds": 2.5, "max_header_bytes": 32768}})
    options = http1_settings(settings, {"keep_alive": True})
    assert (options.header_read_timeout, options.max_buffer_size, options.keep_alive) == (2500, 32768, True)
    with pytest.raises(ConfigError, match="granian.http1_settings"):
        http1_settings(settings, {"nonsense": 1})
