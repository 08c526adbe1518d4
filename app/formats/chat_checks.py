"""The documented ranges of Chat Completions' numeric parameters, checked before a request goes
anywhere (OpenAI's API reference; providers that accept less refuse it themselves).

Checked on every decoded chat request (so also on a bridge's expanded request), and on a bridge's
``params`` when they are saved: a bad value is a 400 naming the field, not a surprise at call time.
"""

from __future__ import annotations

from typing import Any

import msgspec

from junction.errors import InvalidRequest
from junction.schemas.chat import ChatRequest

#: The largest output-token limit accepted: an int32, the largest any provider's API takes.
MAX_OUTPUT_TOKENS = 2**31 - 1

#: field → (lowest, highest) allowed, both inclusive.
RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0, 2),
    "top_p": (0, 1),
    "n": (1, 128),
    "max_tokens": (1, MAX_OUTPUT_TOKENS),
    "max_completion_tokens": (1, MAX_OUTPUT_TOKENS),
    "presence_penalty": (-2, 2),
    "frequency_penalty": (-2, 2),
    "top_logprobs": (0, 20),
    "seed": (-(2**63), 2**63 - 1),
}
LOGIT_BIAS_RANGE = (-100, 100)
#: A placeholder model and message, so a bridge's params can be validated as a request.
_PROBE = {"model": "bridge/params", "messages": [{"role": "user", "content": "x"}]}


def _out_of_range(param: str, value: float, low: float, high: float) -> InvalidRequest:
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:40] + "…"
    return InvalidRequest(f"{param}: {shown} is out of range (must be between {_bound(low)} and {_bound(high)})",
                          param=param, code="invalid_value")


def _bound(value: float) -> str:
    # Whole bounds in full: ``%g`` showed max_tokens' as 2.14748e+09, which reads as a smaller limit.
    return str(value) if isinstance(value, int) else f"{value:g}"


def check_ranges(request: ChatRequest, prefix: str = "") -> None:
    """Raise a 400 naming the first numeric parameter outside its documented range."""
    for field, (low, high) in RANGES.items():
        value = getattr(request, field)
        if value is not None and not low <= value <= high:  # NaN fails both comparisons: refused too
            raise _out_of_range(prefix + field, value, low, high)
    if request.logit_bias:
        low, high = LOGIT_BIAS_RANGE
        for token, bias in request.logit_bias.items():
            if not low <= bias <= high:
                raise _out_of_range(f"{prefix}logit_bias.{token[:40]}", bias, low, high)


def check_bridge_params(params: dict[str, Any]) -> None:
    """A bridge's ``params`` must be valid chat request fields (types and ranges); names the
    offending one as ``params.<field>``. Unknown names pass: they travel as extra fields."""
    from junction.formats.openai import validation_error

    probe = {**params, **_PROBE}
    try:
        request = msgspec.convert(probe, ChatRequest)
    except msgspec.ValidationError as error:
        invalid = validation_error(error)
        param = f"params.{invalid.param}" if invalid.param else "params"
        message = invalid.message[len(invalid.param) + 2:] if invalid.param else invalid.message
        raise InvalidRequest(f"{param}: {message}", param=param, code="invalid_value") from None
    check_ranges(request, prefix="params.")
