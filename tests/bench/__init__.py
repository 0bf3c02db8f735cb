"""Benchmarks: ``python -m tests.bench [name...]`` (``make bench``) prints figures, never pass/fail.

Importing this package registers every benchmark module listed below in ``registry.BENCHMARKS``;
a new benchmark is a module with a ``@register(...)`` function, added to the import list.
"""

from __future__ import annotations

import tests.bench.squid_e2e  # noqa: F401 - registers the real-squid benchmark
from tests.bench import autoscale, core, event_path, localcluster, scale
from tests.bench.registry import BENCHMARKS, Benchmark, Figure, Options, register

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "Figure",
    "Options",
    "autoscale",
    "core",
    "event_path",
    "localcluster",
    "register",
    "scale",
]
