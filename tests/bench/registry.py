"""The benchmark registry: each benchmark is a function that measures and returns figures.

Benchmarks only measure and print; nothing here passes or fails on speed (timed assertions are
flaky and machine-dependent). A module adds one with ``@register("name", "what it measures")``;
``python -m tests.bench [name...]`` runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BENCHMARKS", "Benchmark", "Figure", "Options", "register"]


@dataclass(frozen=True)
class Options:
    """How hard to measure: ``scale`` multiplies the input size, ``repeat`` is the best-of count."""

    scale: float = 1.0
    repeat: int = 5


@dataclass(frozen=True)
class Figure:
    """One printed number: ``label`` says what, ``unit`` in what (``offers/s``, ``bytes``, ``x``)."""

    label: str
    value: float
    unit: str

    def render(self) -> str:
        value = f"{self.value:,.2f}" if self.unit == "x" else f"{self.value:,.0f}"
        return f"  {self.label:<44} {value:>14} {self.unit}"


BenchmarkFunction = Callable[[Options], list[Figure]]


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    function: BenchmarkFunction


BENCHMARKS: dict[str, Benchmark] = {}


def register(name: str, description: str) -> Callable[[BenchmarkFunction], BenchmarkFunction]:
    """Add a benchmark under ``name`` (a later registration with the same name is a mistake)."""

    def add(function: BenchmarkFunction) -> BenchmarkFunction:
        if name in BENCHMARKS:
            raise ValueError(f"benchmark {name!r} registered twice")
        BENCHMARKS[name] = Benchmark(name, description, function)
        return function

    return add
