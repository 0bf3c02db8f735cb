"""Fixtures for the end-to-end autoscaling tests: the image tests' Docker Engine and images (built by
``deploy/images/build.sh``, quick when they exist), and the whole-site test's host preparation."""

from __future__ import annotations

from tests.integration.images.conftest import (  # noqa: F401 - fixtures shared with the image tests
    images_client,
    images_engine,
    steward_images,
)
