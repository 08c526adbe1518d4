"""``{{variable}}`` filling of bridge prompts."""

from __future__ import annotations

import pytest

from junction.domain.bridges.templating import render
from junction.errors import InvalidRequest
from junction.stores.documents.bridges import BridgeVariable

DECLARED = [BridgeVariable(name="name", required=True), BridgeVariable(name="tone", default="friendly")]


def test_values_and_defaults_fill_the_prompt() -> None:
    assert render("Hi {{name}}, be {{ tone }}.", DECLARED, {"name": "Ann"}, "b") == "Hi Ann, be friendly."
    assert (
        render("Hi {{name}}, be {{tone}}.", DECLARED, {"name": "Ann", "tone": "terse"}, "b")
        == "Hi Ann, be terse."
    )


def test_non_text_values_are_inserted_as_json() -> None:
    assert render("{{name}} {{n}}", [], {"name": ["a", 1], "n": 3}, "b") == '["a",1] 3'


def test_missing_required_variable_names_it() -> None:
    with pytest.raises(InvalidRequest) as caught:
        render("no placeholder at all", DECLARED, {}, "greeter")
    assert caught.value.param == "variables.name" and "greeter" in caught.value.message


def test_undeclared_placeholder_without_value_is_refused() -> None:
    with pytest.raises(InvalidRequest) as caught:
        render("Hi {{who}}", [], {}, "b")
    assert caught.value.param == "variables.who"


def test_values_are_not_expanded_again() -> None:
    """A caller cannot smuggle a placeholder (e.g. a secret default) through a value."""
    declared = [BridgeVariable(name="secret", default="s3cr3t"), BridgeVariable(name="name")]
    assert render("Hi {{name}}", declared, {"name": "{{secret}}"}, "b") == "Hi {{secret}}"


def test_a_variable_the_bridge_does_not_know_is_refused_naming_it() -> None:
    with pytest.raises(InvalidRequest) as refused:
        render("Hi {{name}}, {{extra}}", DECLARED, {"name": "Ann", "nmae": "Bo", "extra": 1}, "greeter")
    assert refused.value.param == "variables.nmae" and refused.value.code == "unknown_variable"
    assert refused.value.message == ("variables.nmae: bridge 'greeter' has no variable 'nmae' "
                                     "(its variables: extra, name, tone)")
    # declared (even if unused) and used-but-undeclared placeholders are both accepted
    assert render("Hi {{who}}", DECLARED, {"who": "Al", "name": "Ann", "tone": "dry"}, "b") == "Hi Al"
