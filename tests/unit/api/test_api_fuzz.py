"""Property-based fuzz of the API from its own OpenAPI document (schemathesis): whatever the
requests, no 5xx, and every response conforms to the document.

Each operation gets a fresh running site (core, store, autoscale loop, API) and a few dozen
generated requests, valid and invalid, with the bearer token (writes are exercised, not just
refused). The dispatcher must not have failed either (the harness checks it on teardown).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from framework.api.openapi import openapi_document
from tests.unit.api.harness import Site, make_site


@pytest.fixture
def fuzzed(tmp_path: Path) -> Iterator[Site]:
    site = make_site(tmp_path)
    site.serve()
    site.subscribe()
    site.offers("a", "b")
    site.run_all(healthy=True)
    site.decide("squid", 250.0)
    yield site
    site.close()


NAMES = ["squid", "web", "cvmfs", "nope"]
"""The harness's services, and one that does not exist."""


def narrowed() -> dict[str, Any]:
    """The served document, with service names drawn from :data:`NAMES`: random names would all
    be 404s, and the writes would never get past the lookup."""
    document = openapi_document()
    for operations in document["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["name"] in ("name", "service"):
                    parameter["schema"] = {"type": "string", "enum": NAMES}
    return document


# Built from the document itself (no server needed to collect); requests go to each test's site.
# (schemathesis.pytest.from_fixture would be the natural choice, but it breaks on pytest 9.)
schema = schemathesis.openapi.from_dict(narrowed())


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
    derandomize=True,
)
def test_the_api_never_answers_5xx_and_always_as_documented(case: schemathesis.Case, fuzzed: Site) -> None:
    response = case.call(base_url=fuzzed.url, headers=fuzzed.headers(), timeout=10, allow_redirects=False)
    assert response.status_code < 500, (case.method, case.formatted_path, response.text)
    case.validate_response(response)
    assert not fuzzed.driver.errors
