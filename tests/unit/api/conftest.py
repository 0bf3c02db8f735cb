"""Fixtures for the API tests: a hand-driven runtime with the API in front (``harness.Site``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.api.harness import Site, make_site


@pytest.fixture
def bare(tmp_path: Path) -> Iterator[Site]:
    """The API over a runtime that has not subscribed yet."""
    site = make_site(tmp_path)
    site.serve()
    yield site
    site.close()


@pytest.fixture
def site(bare: Site) -> Site:
    """Subscribed and reconciled; squid (autoscaled, min 1), web (2) and cvmfs (per host) running on
    hosts a and b, one autoscale decision taken for squid."""
    bare.subscribe()
    bare.offers("a", "b")
    bare.run_all(healthy=True)
    bare.offers("a", "b")  # cvmfs waited for a squid endpoint
    bare.run_all(healthy=True)
    bare.decide("squid", 250.0)
    return bare
