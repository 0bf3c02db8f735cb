"""The HTTP JSON source: a number at a field path in a JSON document served over HTTP.

For load figures published by something Steward has no dedicated source for (a load balancer's
status page, a site's own monitoring). ``field`` is a dotted path into the document: ``data.rate``,
with list indexes as numbers, ``items.0.value``. A segment that is all digits indexes a list, or
names a key when the node is an object (``{"0": ...}``); keys containing dots cannot be addressed.

The value must be a JSON **number** (``true`` is not 1, ``"12"`` is not 12: a field that changes
type means the endpoint changed, and guessing would hide it), finite and non-negative; anything else,
a missing field, an HTTP status other than 200, or a body that is not JSON is a missing sample with
the reason. ``instances_field`` (optional) names a count that becomes ``instances_reporting``; if it
is absent or not a count the sample keeps its value with ``instances_reporting`` None.

Parameters: ``url``, ``field``, ``timeout_s`` (5), ``instances_field``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from framework.sources.base import (
    NoValue,
    Params,
    Scalar,
    check_http_url,
    check_load,
    describe_error,
    shorten,
)
from framework.sources.http import redact_url
from framework.sources.http_source import HttpLoadSource

__all__ = ["HttpJsonParams", "HttpJsonSource", "extract_field", "parse_field_path", "parse_json_load"]

log = logging.getLogger(__name__)


def parse_field_path(path: str) -> tuple[str, ...]:
    """``"data.items.0.value"`` -> ``("data", "items", "0", "value")``; ValueError if a segment is empty."""
    segments = tuple(path.split("."))
    if not path or any(not s for s in segments):
        raise ValueError(f"field path {path!r} has an empty segment (use a.b.0.c)")
    return segments


def extract_field(document: object, path: tuple[str, ...]) -> object:
    """The node at ``path`` in ``document``; :class:`NoValue` says where the path breaks."""
    node = document
    for depth, segment in enumerate(path):
        where = ".".join(path[:depth]) or "the top level"
        if isinstance(node, dict):
            if segment not in node:
                raise NoValue(f"no key {segment!r} at {where}")
            node = node[segment]
        elif isinstance(node, list):
            if not segment.isdigit():
                raise NoValue(f"{where} is a list, {segment!r} is not an index")
            index = int(segment)
            if index >= len(node):
                raise NoValue(f"{where} has {len(node)} item(s), no index {index}")
            node = node[index]
        else:
            raise NoValue(f"{where} is {type(node).__name__}, not an object or a list")
    return node


@dataclass(frozen=True, slots=True)
class HttpJsonParams:
    """The HTTP JSON source's parameters, checked."""

    url: str
    field: tuple[str, ...]
    timeout_s: float = 5.0
    instances_field: tuple[str, ...] | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Scalar]) -> HttpJsonParams:
        """Check ``params``; :class:`SourceConfigError` names every bad or unknown key."""
        p = Params("http_json source", params)
        url = p.text("url", required=True)
        check_http_url(p, "url", url)
        paths: dict[str, tuple[str, ...] | None] = {}
        for key, required in (("field", True), ("instances_field", False)):
            raw = p.text(key, required=required)
            paths[key] = None
            if raw is not None:
                try:
                    paths[key] = parse_field_path(raw)
                except ValueError as exc:
                    p.problem(f"{key}: {exc}")
        timeout_s = p.number("timeout_s", 5.0, exclusive_minimum=0, maximum=300)
        p.finish()
        field = paths["field"]
        assert url is not None and field is not None  # finish() raised otherwise
        return cls(url, field, timeout_s, paths["instances_field"])

    def __repr__(self) -> str:
        instances = ".".join(self.instances_field) if self.instances_field else None
        return (
            f"HttpJsonParams(url={redact_url(self.url)!r}, field={'.'.join(self.field)!r}, "
            f"timeout_s={self.timeout_s!r}, instances_field={instances!r})"
        )


def parse_json_load(status: int, body: bytes, params: HttpJsonParams) -> tuple[float, int | None]:
    """The load (and instance count) in an answer; :class:`NoValue` says why there is none. Pure."""
    if status != 200:
        raise NoValue(f"HTTP {status}")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise NoValue("the answer is not JSON") from None
    field = ".".join(params.field)
    value = check_load(extract_field(document, params.field), field)
    instances: int | None = None
    if params.instances_field is not None:
        try:
            raw = extract_field(document, params.instances_field)
            if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0 or raw != int(raw):
                raise NoValue(f"{'.'.join(params.instances_field)} is not a count: {shorten(repr(raw), 40)}")
            instances = int(raw)
        except (NoValue, OverflowError, ValueError) as exc:
            log.debug("instances_field gave nothing: %s", describe_error(exc))
    return value, instances


class HttpJsonSource(HttpLoadSource[HttpJsonParams]):
    """Load source over a JSON document (see the module docstring)."""

    kind = "http_json"

    def _measure(self) -> tuple[float, int | None]:
        response = self._http(self.params.url, timeout_s=self.params.timeout_s)
        return parse_json_load(response.status, response.body, self.params)
