"""Durations and sizes: the accepted spellings, the refused ones, and their messages."""

from __future__ import annotations

import math

import pytest

from framework.config.units import MAX_DURATION_S, UnitError, parse_duration, parse_size_mib


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1.5h", 5400.0),
        ("250ms", 0.25),
        ("2d", 172800.0),
        ("1w", 604800.0),
        (".5s", 0.5),
        ("10 s", 10.0),
        ("  7m ", 420.0),
        ("45", 45.0),
        (45, 45.0),
        (2.5, 2.5),
        (0, 0.0),
    ],
)
def test_durations_are_read_into_seconds(value: str | int | float, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "abc",
            "expected a duration such as '30s', '5m', '1.5h', '250ms', '2d' or a number of seconds, "
            "got 'abc'",
        ),
        ("5 minutes", "unknown duration unit 'minutes' in '5 minutes'; use one of ms, s, m, h, d, w"),
        (
            "1h30m",
            "expected a duration such as '30s', '5m', '1.5h', '250ms', '2d' or a number of seconds, "
            "got '1h30m'",
        ),
        ("-5s", "must not be negative, got '-5s'"),
        (-1, "must not be negative, got -1"),
        ("", "expected a duration such as '30s', '5m', '1.5h', '250ms', '2d' or a number of seconds, got ''"),
        ("101000w", "too large: '101000w' is more than 100 years"),
        (math.inf, "too large: inf is more than 100 years"),
        (10**100, "too large: the number is more than 100 years"),
        (
            True,
            "expected a duration such as '30s', '5m', '1.5h', '250ms', '2d' or a number of seconds, got true",
        ),
    ],
)
def test_bad_durations_say_what_was_expected(value: str | int | float, message: str) -> None:
    with pytest.raises(UnitError) as caught:
        parse_duration(value)
    assert str(caught.value) == message


def test_nan_is_not_a_duration() -> None:
    with pytest.raises(UnitError, match="expected a duration"):
        parse_duration(math.nan)


def test_a_century_is_the_longest_duration() -> None:
    assert parse_duration(MAX_DURATION_S) == MAX_DURATION_S


@pytest.mark.parametrize(
    ("value", "mib"),
    [
        ("512MiB", 512.0),
        ("2GiB", 2048.0),
        ("1TiB", 1024.0 * 1024),
        ("1024KiB", 1.0),
        ("100M", 100.0),
        ("100m", 100.0),
        ("1G", 1024.0),
        ("2Gi", 2048.0),
        ("1.5GB", 1.5e9 / 2**20),
        ("1MB", 1e6 / 2**20),
        ("1000kB", 1e6 / 2**20),
        ("1048576B", 1.0),
        ("256", 256.0),
        (256, 256.0),
        (0.5, 0.5),
        ("1.5 GiB", 1536.0),
    ],
)
def test_sizes_are_read_into_mebibytes(value: str | int | float, mib: float) -> None:
    assert parse_size_mib(value) == pytest.approx(mib)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("lots", "expected a size such as '512MiB', '2GiB', '1.5GB', '100M' or a number of MiB, got 'lots'"),
        (
            "2gb",
            "unknown size unit 'gb' in '2gb'; use KiB, MiB, GiB, TiB (binary), kB, MB, GB, TB (decimal), B, "
            "or K, M, G, T (binary)",
        ),
        ("-1GiB", "must not be negative, got '-1GiB'"),
        (-3, "must not be negative, got -3"),
        ("2000000TiB", "too large: '2000000TiB' is more than 1 EiB"),
        (math.inf, "too large: inf is more than 1 EiB"),
    ],
)
def test_bad_sizes_say_what_was_expected(value: str | int | float, message: str) -> None:
    with pytest.raises(UnitError) as caught:
        parse_size_mib(value)
    assert str(caught.value) == message
