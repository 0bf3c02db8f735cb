"""stout duration strings, as the agent writes them into an executor's environment."""

from __future__ import annotations

import pytest

from framework.mesos.durations import UNIT_SECONDS, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5secs", 5.0),
        ("1.5mins", 90.0),
        ("100ms", 0.1),
        ("2hrs", 7200.0),
        ("1days", 86400.0),
        ("1weeks", 604800.0),
        ("10ns", 1e-8),
        ("3us", 3e-6),
        ("15mins", 900.0),
        ("0secs", 0.0),
        (".5secs", 0.5),
        ("2.secs", 2.0),
        ("  2secs\n", 2.0),
    ],
)
def test_parses_every_stout_unit_into_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "5",
        "secs",
        "5s",
        "5sec",
        "5 secs",
        "-5secs",
        "1.2.3secs",
        ".secs",
        "5SECS",
        "5secs5",
        "1e3secs",
        "nan secs",
        "1000000000000weeks",
    ],
)
def test_refuses_anything_stout_would_refuse(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_unknown_unit_error_lists_the_supported_units() -> None:
    with pytest.raises(ValueError) as info:
        parse_duration("5fortnights")
    for unit in UNIT_SECONDS:
        assert unit in str(info.value)
