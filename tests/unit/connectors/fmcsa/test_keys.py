"""USDOT target keys: canonical form, and refusal of anything else before any request."""

from __future__ import annotations

import pytest

from synchestra.connectors.fmcsa import dot_number, normalize_dot_key
from synchestra.core.errors import InputError
from synchestra.core.models import Target

HOSTILE = [
    "1' OR '1'='1",
    "dot:1' OR '1'='1",
    "../",
    "dot:../1",
    "dot:1/../2",
    "123456789",
    "dot:123456789",
    "",
    "dot:",
    "dot",
    "0",
    "dot:00000000",
    "dot:12a",
    "dot:1e5",
    "+1",
    "-1",
    "dot:1.0",
    "dot: 123",
    "dot:1%27",
    "dot:\uff11\uff12\uff13",  # fullwidth digits
    "dot:\u0661\u0662\u0663",  # Arabic-Indic digits: \d would take them
    "mc:123456",
    "dot:dot:1",
    "x" * 5000,
]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("80321", "dot:80321"),
        ("dot:80321", "dot:80321"),
        ("DOT:80321", "dot:80321"),
        ("  80321\n", "dot:80321"),
        ("dot:00080321", "dot:80321"),
        ("12345678", "dot:12345678"),
        ("1", "dot:1"),
    ],
)
def test_normalize_dot_key_gives_the_canonical_key(text: str, key: str) -> None:
    assert normalize_dot_key(text) == key


@pytest.mark.parametrize("key", HOSTILE)
def test_anything_but_one_to_eight_digits_is_refused_naming_the_key(key: str) -> None:
    with pytest.raises(InputError, match="invalid USDOT target key") as caught:
        normalize_dot_key(key)
    message = str(caught.value)
    assert repr(key[:40]) in message
    assert "1 to 8 digits" in message
    assert len(message) < 200  # a 5,000-character key is not echoed whole


@pytest.mark.parametrize("key", [*HOSTILE, "dot:123\n", " 123"])
def test_dot_number_refuses_the_same_keys_and_untrimmed_ones(key: str) -> None:
    """Stored keys are used as they are: only normalize_dot_key forgives whitespace."""
    with pytest.raises(InputError, match="invalid USDOT target key"):
        dot_number(Target(key))


def test_dot_number_of_a_target_or_a_key() -> None:
    assert dot_number(Target("dot:80321", "ACME Freight")) == "80321"
    assert dot_number("80321") == "80321"
    assert dot_number("dot:0000042") == "42"


def test_dot_number_without_a_target_says_to_use_targets() -> None:
    with pytest.raises(InputError, match="per_target = true"):
        dot_number(None)
