"""Fixtures for the deployment-file tests: the image fixtures of tests/integration/images (a reachable
Docker Engine, the local images built once per session, per-test containers always removed), for the
checks of the production squid's configuration on the local squid image."""

from __future__ import annotations

from tests.integration.images.conftest import (  # noqa: F401 (fixtures, re-exported for this directory)
    containers,
    images_client,
    images_engine,
    steward_images,
)
