"""The operator HTTP API (``framework.api.server``) and what it is made of: JSON views of the
snapshots (``views``), operator actions carried out on the dispatcher thread (``actions``) and
the OpenAPI document (``openapi``)."""

from framework.api.actions import ApiError, Operator
from framework.api.server import ApiServer, ApiStartupError, start_api

__all__ = ["ApiError", "ApiServer", "ApiStartupError", "Operator", "start_api"]
