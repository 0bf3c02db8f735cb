"""Site knowledge as defaults: what each service kind gets when the file does not say otherwise.

Defaults are applied to the YAML tree *before* conversion, as if the operator had written them, so
they pass through exactly the same validation and the typed objects have no "unset, fill in later"
states. The rule is per key: a key the operator wrote (even an empty list) is never touched; only
absent keys are filled. Two defaults are additive instead, because losing them breaks the
service: the ``/cvmfs`` mount of ``cvmfs`` and ``startd`` services is appended to the operator's
``volumes`` unless one of them already mounts something at ``/cvmfs``.

============  ==========================================================================================
kind          defaults
============  ==========================================================================================
every kind    ``role``: the framework's first role; ``instances: 1`` unless ``autoscale`` is given
``cvmfs``     ``instances: per_host``; ``container.cap_add: [SYS_ADMIN]``, ``devices: [/dev/fuse]``,
              ``security_opt: [apparmor:unconfined]``; volume ``/cvmfs:/cvmfs`` rw, ``rshared``
``startd``    ``container.cap_drop: [ALL]``, ``container.user: "1000:1000"``; volume
              ``/cvmfs:/cvmfs`` ro, ``rslave``; a ``startd:`` section is required
``squid``     ``instances: 2`` (or ``autoscale.min: 2``); ``resources.ports: 1`` unless ``fixed_ports``;
              ``constraints: [{unique: hostname}]`` (two squids never share a host)
============  ==========================================================================================
"""

from __future__ import annotations

from typing import Any, Final

from framework.config.yamltree import Entry, Mapping, Node, Scalar, Sequence

__all__ = ["CVMFS_MOUNT", "KIND_DEFAULTS", "KIND_VOLUMES", "apply_defaults"]

CVMFS_MOUNT: Final = "/cvmfs"

KIND_DEFAULTS: Final[dict[str, dict[str, Any]]] = {
    "cvmfs": {
        "instances": "per_host",
        "container": {
            "cap_add": ["SYS_ADMIN"],
            "devices": ["/dev/fuse"],
            "security_opt": ["apparmor:unconfined"],
        },
    },
    "startd": {
        "instances": 1,
        "container": {"cap_drop": ["ALL"], "user": "1000:1000"},
    },
    "squid": {
        "instances": 2,
        "autoscale": {"min": 2},
        "resources": {"ports": 1},
        "constraints": [{"unique": "hostname"}],
    },
    "generic": {"instances": 1},
}
"""Per-kind defaults, written as the YAML they stand for (see the module docstring for the rules)."""

KIND_VOLUMES: Final[dict[str, dict[str, Any]]] = {
    "cvmfs": {
        "host_path": CVMFS_MOUNT,
        "container_path": CVMFS_MOUNT,
        "mode": "rw",
        "propagation": "rshared",
    },
    "startd": {
        "host_path": CVMFS_MOUNT,
        "container_path": CVMFS_MOUNT,
        "mode": "ro",
        "propagation": "rslave",
    },
}
"""The volume each kind always gets unless something is already mounted at its container path."""

# Keys whose default only applies when none of the alternative keys is present either.
_ALTERNATIVES: Final[dict[str, tuple[str, ...]]] = {
    "instances": ("autoscale",),
    "ports": ("fixed_ports",),
}
# Sections whose defaults are merged only into what the operator wrote, never created.
_ONLY_IF_PRESENT: Final = frozenset({"autoscale"})


def apply_defaults(root: Node) -> Node:
    """Return ``root`` with role and kind defaults filled into every service that names a valid kind."""
    if not isinstance(root, Mapping):
        return root
    services_entry = root.get("services")
    if services_entry is None or not isinstance(services_entry.value, Mapping):
        return root
    role = _first_role(root)
    services = Mapping(
        tuple(
            Entry(e.key, e.key_line, _service(e.value, e.key_line, role))
            for e in services_entry.value.entries
        ),
        services_entry.value.line,
    )
    return _replace(root, Entry("services", services_entry.key_line, services))


def _first_role(root: Mapping) -> str:
    framework = root.get("framework")
    if framework is not None and isinstance(framework.value, Mapping):
        roles = framework.value.get("roles")
        if roles is not None and isinstance(roles.value, Sequence) and roles.value.items:
            first = roles.value.items[0]
            if isinstance(first, Scalar) and first.kind == "str":
                return first.text
    return "*"


def _service(node: Node, line: int, role: str) -> Node:
    if not isinstance(node, Mapping):
        return node
    if node.get("role") is None:
        node = _with(node, "role", _synthesize(role, line))
    kind_entry = node.get("kind")
    if kind_entry is None or not isinstance(kind_entry.value, Scalar):
        return node
    kind = kind_entry.value.text
    if kind not in KIND_DEFAULTS:
        return node
    node = _merge(node, KIND_DEFAULTS[kind], line)
    if kind in KIND_VOLUMES:
        node = _add_volume(node, KIND_VOLUMES[kind], line)
    return node


def _merge(node: Mapping, defaults: dict[str, Any], line: int) -> Mapping:
    for key, value in defaults.items():
        entry = node.get(key)
        if entry is None:
            if key in _ONLY_IF_PRESENT or any(
                node.get(alt) is not None for alt in _ALTERNATIVES.get(key, ())
            ):
                continue
            node = _with(node, key, _synthesize(value, line))
        elif isinstance(value, dict) and isinstance(entry.value, Mapping):
            node = _replace(node, Entry(key, entry.key_line, _merge(entry.value, value, entry.key_line)))
    return node


def _add_volume(service: Mapping, volume: dict[str, Any], line: int) -> Mapping:
    container = service.get("container")
    if container is None or not isinstance(container.value, Mapping):
        return service
    volumes = container.value.get("volumes")
    new = _synthesize(volume, line)
    if volumes is None:
        updated = _with(container.value, "volumes", Sequence((new,), line))
    elif isinstance(volumes.value, Sequence):
        for item in volumes.value.items:
            if isinstance(item, Mapping):
                target = item.get("container_path")
                if target is not None and isinstance(target.value, Scalar) and _same_path(target.value.text):
                    return service
        items = Sequence((*volumes.value.items, new), volumes.value.line)
        updated = _replace(container.value, Entry("volumes", volumes.key_line, items))
    else:
        return service
    return _replace(service, Entry("container", container.key_line, updated))


def _same_path(text: str) -> bool:
    return text.rstrip("/") == CVMFS_MOUNT


def _with(node: Mapping, key: str, value: Node) -> Mapping:
    return Mapping((*node.entries, Entry(key, value.line, value)), node.line)


def _replace(node: Mapping, new: Entry) -> Mapping:
    return Mapping(tuple(new if e.key == new.key else e for e in node.entries), node.line)


def _synthesize(value: Any, line: int) -> Node:
    """Build the node the operator would have written for ``value``, placed on ``line``."""
    if isinstance(value, dict):
        return Mapping(tuple(Entry(k, line, _synthesize(v, line)) for k, v in value.items()), line)
    if isinstance(value, list):
        return Sequence(tuple(_synthesize(v, line) for v in value), line)
    if isinstance(value, bool):
        return Scalar("bool", value, "true" if value else "false", line)
    if isinstance(value, int):
        return Scalar("int", value, str(value), line)
    if isinstance(value, float):
        return Scalar("float", value, repr(value), line)
    return Scalar("str", str(value), str(value), line)
