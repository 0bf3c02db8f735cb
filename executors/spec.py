"""What Steward tells the executor about a task's container: ``TaskInfo.data``, format ``steward-executor/1``.

A task for the Steward executor carries no ``TaskInfo.command``/``container`` (Mesos allows exactly one
of ``command`` or ``executor``, and a ``container`` on a custom-executor task would be read by the
agent's containerizer, not by us). The container is described instead in ``TaskInfo.data``, base64 of
one JSON object built by ``framework.core.taskbuild``::

    {"format": "steward-executor/1",
     "service": "squid", "kind": "squid",            # kind picks the drain hook
     "container": <mesos.v1.ContainerInfo>,            # exactly what the Docker containerizer would get
     "command": <mesos.v1.CommandInfo>,                # shell/value/arguments/environment
     "usage_interval_s": 10.0}                         # optional: how often to report usage

``container`` and ``command`` are the same values Steward builds for Mesos's own Docker containerizer
(including the pass-through ``docker.parameters`` such as ``volume=/cvmfs:/cvmfs:rw,rshared`` or
``cap-add=SYS_ADMIN``), so a service runs the same container whichever executor it chooses. The data
never holds a secret: secret files travel as host paths of read-only bind mounts, as for Docker tasks.

Unknown fields are ignored (a newer Steward may add some); a different ``format`` is refused, so an old
executor never half-understands a new layout.
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

import msgspec

from framework.model.proto import CommandInfo, ContainerInfo, TaskInfo

__all__ = ["DATA_FORMAT", "KINDS", "LaunchSpec", "SpecError", "decode_launch_spec", "encode_launch_spec"]

DATA_FORMAT: Final = "steward-executor/1"
KINDS: Final = frozenset({"squid", "startd", "cvmfs", "generic"})


class SpecError(ValueError):
    """``TaskInfo.data`` is missing or not a ``steward-executor/1`` description (TASK_ERROR)."""


class LaunchSpec(msgspec.Struct, frozen=True, omit_defaults=True):
    """The decoded ``TaskInfo.data``."""

    format: str
    container: ContainerInfo
    command: CommandInfo
    kind: str = "generic"
    service: str = ""
    usage_interval_s: float | None = None


def decode_launch_spec(task: TaskInfo) -> LaunchSpec:
    """The launch description of ``task``; raises ``SpecError`` saying what is wrong."""
    if not task.data:
        raise SpecError(f"task {task.task_id.value} has no TaskInfo.data: not a Steward executor task")
    try:
        raw = base64.b64decode(task.data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SpecError(f"TaskInfo.data is not base64: {exc}") from None
    try:
        spec = msgspec.json.decode(raw, type=LaunchSpec)
    except msgspec.ValidationError as exc:
        raise SpecError(f"TaskInfo.data is not a {DATA_FORMAT} description: {exc}") from None
    except msgspec.DecodeError as exc:
        raise SpecError(f"TaskInfo.data is not JSON: {exc}") from None
    if spec.format != DATA_FORMAT:
        raise SpecError(f"TaskInfo.data has format {spec.format!r}; this executor reads {DATA_FORMAT!r}")
    if spec.container.type != "DOCKER" or spec.container.docker is None:
        raise SpecError("the Steward executor runs Docker containers: container.docker is required")
    if not spec.container.docker.image:
        raise SpecError("container.docker.image is empty")
    if spec.kind not in KINDS:
        raise SpecError(f"unknown service kind {spec.kind!r} (known: {', '.join(sorted(KINDS))})")
    if spec.usage_interval_s is not None and not spec.usage_interval_s > 0:
        raise SpecError(f"usage_interval_s must be positive, not {spec.usage_interval_s}")
    return spec


def encode_launch_spec(spec: LaunchSpec) -> str:
    """``spec`` as ``TaskInfo.data`` (base64 of the JSON), the inverse of :func:`decode_launch_spec`."""
    return base64.b64encode(msgspec.json.encode(spec)).decode("ascii")
