"""A small dataclass-driven converter: a YAML node tree in, frozen typed objects out, every issue kept.

The configuration classes (``framework.config.model``) are plain frozen dataclasses; their type
hints *are* the schema. :class:`Converter` walks a class's fields and converts each YAML key by its
hint, so adding a setting is adding one annotated field (and a line of documentation)::

    @dataclass(frozen=True, slots=True)
    class OffersConfig:
        refuse_seconds: Annotated[Duration, positive] = 120.0
        \"\"\"How long a declined offer stays away.\"\"\"

Supported hints: ``str``, ``int``, ``float``, ``bool``, :data:`Duration` (seconds) and :data:`SizeMiB`
(MiB), ``Literal[...]`` of strings, ``enum.Enum`` subclasses (by value), ``X | None``, unions of
scalars (``int | Literal["per_host"]``), ``tuple[X, ...]`` (a YAML list, stored as a tuple),
``Mapping[str, X]`` (stored read-only, in file order), nested dataclasses, and unions of dataclasses
told apart by a ``config_tag`` class variable (a key that must be present, or a key and its value).
``Annotated[X, Check(...)]`` adds value rules; ``Annotated[Mapping[...], KeyCheck(...)]`` key rules.

YAML keys are the attribute names, except that a :data:`Duration` attribute ends in ``_s`` and a
:data:`SizeMiB` attribute in ``_mib`` while the YAML key drops that suffix (``timeout_s`` is written
``timeout: 30s``); :func:`setting` can name the key explicitly. Rules that involve several fields
live in a ``_cross_check(self) -> Iterator[Problem]`` method on the class; the converter calls it
once the object exists and places each :class:`Problem` on the line of the key it names.

Nothing here raises on bad input: conversion failures become :class:`~framework.config.errors.Issue`
records and the converter returns :data:`INVALID` for that value, carrying on with its siblings so
that all errors of a file are reported together.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import functools
import math
import os
import re
import types
import typing
from collections.abc import Callable, Iterator
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from framework.config.errors import Issue
from framework.config.units import UnitError, parse_duration, parse_size_mib
from framework.config.yamltree import Mapping, Node, Scalar, Sequence

__all__ = [
    "INVALID",
    "Check",
    "Converter",
    "Duration",
    "KeyCheck",
    "LocalPath",
    "Problem",
    "SizeMiB",
    "absolute_path",
    "at_least",
    "at_most",
    "greater_than",
    "matches",
    "non_empty",
    "positive",
    "setting",
    "unique_items",
]

MAX_INT: Final = 2**63 - 1
"""Integers beyond int64 are errors: Mesos and the JSON it speaks cannot carry them."""


class _Unit(enum.Enum):
    """Markers in ``Annotated`` hints for values parsed from text with a unit or a base."""

    DURATION = "duration"
    SIZE = "size"
    LOCAL_PATH = "local path"


Duration = Annotated[float, _Unit.DURATION]
"""Seconds; written in YAML as ``30s``, ``5m``, ``1.5h``, ``250ms``, ``2d`` or a number of seconds."""

SizeMiB = Annotated[float, _Unit.SIZE]
"""Mebibytes; written in YAML as ``512MiB``, ``2GiB``, ``1.5GB``, ``100M`` or a number of MiB."""

LocalPath = Annotated[str, _Unit.LOCAL_PATH]
"""A path on the machine that runs Steward itself (a secret, a CA bundle, the state directory).
A relative path is taken relative to the configuration file's directory and stored absolute."""


@dataclass(frozen=True, slots=True)
class Check:
    """A rule on a converted value: ``test`` returns an error message, or ``None`` when it holds."""

    test: Callable[[Any], str | None]


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """A rule on every key of a ``Mapping[str, X]`` field (service names, variable names)."""

    test: Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class Problem:
    """A cross-field finding of a ``_cross_check`` method.

    ``at`` is the YAML key path from the object's own mapping (``("max",)``, or
    ``("services", "squid", "container", "privileged")`` from the top); the converter turns it into
    a full dotted path and the line of the deepest key that exists in the file.
    """

    at: tuple[str | int, ...]
    message: str
    warning: bool = False
    """A warning is reported but does not make the configuration invalid."""


class _Invalid:
    """The marker for a value that failed conversion (its issues are already recorded)."""

    def __repr__(self) -> str:
        return "INVALID"


INVALID: Final = _Invalid()
"""Returned by :meth:`Converter.convert` for a value that could not be converted."""


def setting(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Callable[[], Any] | None = None,
    key: str | None = None,
    from_key: bool = False,
    internal: bool = False,
) -> Any:
    """A dataclass field with configuration metadata.

    ``key`` names the YAML key when it differs from the derived one; ``from_key`` fills the field
    with the key under which the object sits in a parent ``Mapping`` (a service's name);
    ``internal`` fields are never read from YAML (the loader fills them, e.g. warnings).
    """
    metadata = {"config_key": key, "config_from_key": from_key, "config_internal": internal}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# -- value rules ----------------------------------------------------------------------------------


def _fmt(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def at_least(bound: float) -> Check:
    """The value is ``>= bound``."""
    return Check(lambda v: None if v >= bound else f"must be >= {_fmt(bound)}, got {_fmt(v)}")


def greater_than(bound: float) -> Check:
    """The value is ``> bound``."""
    return Check(lambda v: None if v > bound else f"must be > {_fmt(bound)}, got {_fmt(v)}")


def at_most(bound: float) -> Check:
    """The value is ``<= bound``."""
    return Check(lambda v: None if v <= bound else f"must be <= {_fmt(bound)}, got {_fmt(v)}")


positive: Final = greater_than(0)
"""The value is ``> 0``."""

non_empty: Final = Check(lambda v: None if len(v) > 0 else "must not be empty")
"""A string, list or mapping with at least one element."""


def matches(pattern: str, what: str) -> Check:
    """The string fully matches ``pattern``; ``what`` says in words what is expected."""
    compiled = re.compile(pattern)

    def test(value: str) -> str | None:
        if compiled.fullmatch(value):
            return None
        return f"expected {what}, got {_quote(value)}"

    return Check(test)


absolute_path: Final = Check(
    lambda v: None if v.startswith("/") and "\0" not in v else f"expected an absolute path, got {_quote(v)}"
)
"""A string that is an absolute filesystem path."""


def _unique(values: tuple[Any, ...]) -> str | None:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            return f"{_fmt(value)} is listed twice"
        seen.add(value)
    return None


unique_items: Final = Check(_unique)
"""A list without repeated elements."""


# -- introspection -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _FieldSpec:
    name: str
    key: str
    hint: Any
    required: bool
    from_key: bool


def _unwrap(hint: Any) -> tuple[Any, tuple[Any, ...]]:
    """Split ``Annotated[X, a, b]`` (nested ones flattened) into ``X`` and ``(a, b)``."""
    extras: list[Any] = []
    while typing.get_origin(hint) is Annotated:
        args = typing.get_args(hint)
        hint = args[0]
        extras[:0] = args[1:]
    return hint, tuple(extras)


def _unit_of(extras: tuple[Any, ...]) -> _Unit | None:
    for extra in extras:
        if isinstance(extra, _Unit):
            return extra
    return None


@functools.cache
def field_specs(cls: type) -> tuple[_FieldSpec, ...]:
    """The configurable fields of a dataclass, with their YAML keys; raises TypeError on a bad schema."""
    hints = typing.get_type_hints(cls, include_extras=True)
    specs: list[_FieldSpec] = []
    for field in dataclasses.fields(cls):
        meta = field.metadata
        if meta.get("config_internal"):
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise TypeError(f"{cls.__name__}.{field.name}: internal fields need a default")
            continue
        hint = hints[field.name]
        unit = _unit_of(_unwrap(hint)[1]) or _unit_of(_unwrap(_strip_none(hint))[1])
        key = meta.get("config_key")
        if key is None:
            key = _derive_key(cls, field.name, unit)
        required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        specs.append(_FieldSpec(field.name, key, hint, required, bool(meta.get("config_from_key"))))
    return tuple(specs)


def _strip_none(hint: Any) -> Any:
    if _is_union(hint):
        members = [m for m in typing.get_args(hint) if m is not type(None)]
        if len(members) == 1:
            return members[0]
    return hint


def _derive_key(cls: type, name: str, unit: _Unit | None) -> str:
    if unit is _Unit.DURATION:
        if name.endswith("_s"):
            return name[:-2]
        if not name.endswith("_seconds"):
            raise TypeError(f"{cls.__name__}.{name}: a Duration attribute must end in _s or _seconds")
    if unit is _Unit.SIZE:
        if not name.endswith("_mib"):
            raise TypeError(f"{cls.__name__}.{name}: a SizeMiB attribute must end in _mib")
        return name[: -len("_mib")]
    return name


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _config_tag(cls: type) -> tuple[str, str | None]:
    tag = getattr(cls, "config_tag", None)
    if not (isinstance(tag, tuple) and len(tag) == 2 and isinstance(tag[0], str)):
        raise TypeError(f"{cls.__name__} is in a union of dataclasses but has no config_tag")
    return tag[0], tag[1]


def describe(hint: Any) -> str:
    """What a hint accepts, in words for messages ("an integer", "'per_host'")."""
    base, extras = _unwrap(hint)
    unit = _unit_of(extras)
    if unit is _Unit.DURATION:
        return "a duration"
    if unit is _Unit.SIZE:
        return "a size"
    if _is_union(base):
        members = [m for m in typing.get_args(base) if m is not type(None)]
        return " or ".join(describe(m) for m in members)
    if typing.get_origin(base) is Literal:
        return ", ".join(f"'{v}'" for v in typing.get_args(base))
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return ", ".join(f"'{m.value}'" for m in base)
    if dataclasses.is_dataclass(base) or typing.get_origin(base) in (AbcMapping, dict):
        return "a mapping"
    if typing.get_origin(base) is tuple:
        return "a list"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(base, str(base))


def _quote(text: str) -> str:
    shown = text if len(text) <= 60 else text[:57] + "..."
    return "'" + shown.replace("'", "\\'") + "'"


def _got(node: Node) -> str:
    if isinstance(node, Mapping):
        return "a mapping"
    if isinstance(node, Sequence):
        return "a list"
    if node.kind == "null":
        return "an empty value" if node.text == "" else "null"
    if node.kind == "str":
        return _quote(node.text)
    if len(node.text) > 40:
        return node.text[:20] + "..." + f" ({len(node.text)} characters)"
    return node.text


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"unknown key (did you mean '{close[0]}'?)"
    return "unknown key; expected one of: " + ", ".join(known)


# -- the converter -------------------------------------------------------------------------------


class Converter:
    """Converts nodes by type hints, collecting issues and warnings for one file."""

    def __init__(self, filename: str, base_dir: str = "/") -> None:
        self.filename = filename
        self.base_dir = base_dir
        """Directory that relative :data:`LocalPath` values are resolved against."""
        self.issues: list[Issue] = []
        self.warnings: list[Issue] = []

    def error(self, line: int, path: str, message: str) -> None:
        """Record one issue."""
        self.issues.append(Issue(self.filename, line, path, message))

    def convert(self, node: Node, hint: Any, path: str, line: int, *, mapping_key: str | None = None) -> Any:
        """Convert ``node`` to ``hint``; return :data:`INVALID` (issues recorded) if it cannot be.

        ``line`` is the line of the key that holds ``node``, used for problems about keys missing
        from it; ``mapping_key`` is the key under which a dataclass sits in a parent mapping.
        """
        if isinstance(node, Scalar) and node.kind == "invalid":
            return INVALID  # already reported where it was read
        base, extras = _unwrap(hint)
        value = self._convert_base(node, base, extras, path, line, mapping_key)
        if value is INVALID:
            return INVALID
        for extra in extras:
            if isinstance(extra, Check):
                message = extra.test(value)
                if message is not None:
                    self.error(node.line, path, message)
                    return INVALID
        return value

    def _convert_base(  # noqa: PLR0917 - an internal dispatch, every argument is needed
        self, node: Node, base: Any, extras: tuple[Any, ...], path: str, line: int, mapping_key: str | None
    ) -> Any:
        if _is_union(base):
            return self._convert_union(node, base, path, line, mapping_key)
        origin = typing.get_origin(base)
        if origin is Literal:
            return self._convert_choice(node, [str(v) for v in typing.get_args(base)], path, lambda s: s)
        if isinstance(base, type) and issubclass(base, enum.Enum):
            enum_cls = base
            return self._convert_choice(node, [str(m.value) for m in base], path, enum_cls)
        if origin is tuple:
            return self._convert_tuple(node, base, path)
        if origin in (AbcMapping, dict):
            return self._convert_mapping(node, base, extras, path)
        if dataclasses.is_dataclass(base) and isinstance(base, type):
            return self._convert_dataclass(node, base, path, line, mapping_key)
        if base is type(None):
            if isinstance(node, Scalar) and node.kind == "null":
                return None
            return self._type_error(node, path, "nothing")
        unit = _unit_of(extras)
        if unit is not None:
            return self._convert_unit(node, unit, path)
        if base is bool:
            return self._convert_bool(node, path)
        if base is int:
            return self._convert_int(node, path)
        if base is float:
            return self._convert_float(node, path)
        if base is str:
            return self._convert_str(node, path)
        raise TypeError(f"{path}: unsupported configuration type {base!r}")

    def _type_error(self, node: Node, path: str, expected: str) -> _Invalid:
        self.error(node.line, path, f"expected {expected}, got {_got(node)}")
        return INVALID

    # scalars

    def _convert_str(self, node: Node, path: str) -> Any:
        if isinstance(node, Scalar) and node.kind in ("str", "int", "float"):
            return node.text
        return self._type_error(node, path, "a string")

    def _convert_bool(self, node: Node, path: str) -> Any:
        if isinstance(node, Scalar) and node.kind == "bool":
            return node.value
        return self._type_error(node, path, "true or false")

    def _too_large(self, node: Scalar, path: str) -> _Invalid:
        self.error(node.line, path, f"number too large: {_got(node)}")
        return INVALID

    def _convert_int(self, node: Node, path: str) -> Any:
        if not (isinstance(node, Scalar) and node.kind == "int"):
            return self._type_error(node, path, "an integer")
        if node.value is None or abs(typing.cast(int, node.value)) > MAX_INT:
            return self._too_large(node, path)
        return node.value

    def _convert_float(self, node: Node, path: str) -> Any:
        if not (isinstance(node, Scalar) and node.kind in ("int", "float")):
            return self._type_error(node, path, "a number")
        if node.value is None:
            return self._too_large(node, path)
        number = typing.cast(float, node.value)
        if math.isnan(number):
            return self._type_error(node, path, "a number")
        value = float(number) if abs(number) < 1e300 else math.inf
        if math.isinf(value):
            return self._too_large(node, path)
        return value

    def _convert_unit(self, node: Node, unit: _Unit, path: str) -> Any:
        if unit is _Unit.LOCAL_PATH:
            text = self._convert_str(node, path)
            if text is INVALID:
                return INVALID
            if not text or "\0" in text:
                self.error(node.line, path, f"expected a file path, got {_got(node)}")
                return INVALID
            return os.path.normpath(os.path.join(self.base_dir, text))
        if not (isinstance(node, Scalar) and node.kind in ("int", "float", "str")):
            return self._type_error(node, path, "a duration" if unit is _Unit.DURATION else "a size")
        if node.kind == "int" and node.value is None:
            return self._too_large(node, path)
        raw = typing.cast(str | int | float, node.value)
        try:
            return parse_duration(raw) if unit is _Unit.DURATION else parse_size_mib(raw)
        except UnitError as exc:
            self.error(node.line, path, str(exc))
            return INVALID

    def _convert_choice(self, node: Node, choices: list[str], path: str, make: Callable[[str], Any]) -> Any:
        shown = ", ".join(choices)
        if not (isinstance(node, Scalar) and node.kind in ("str", "int")):
            self.error(node.line, path, f"expected one of: {shown}; got {_got(node)}")
            return INVALID
        if node.text in choices:
            return make(node.text)
        close = difflib.get_close_matches(node.text, choices, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        self.error(node.line, path, f"expected one of: {shown}; got {_got(node)}{hint}")
        return INVALID

    # containers

    def _convert_tuple(self, node: Node, base: Any, path: str) -> Any:
        args = typing.get_args(base)
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"{path}: only tuple[X, ...] is supported, not {base!r}")
        if not isinstance(node, Sequence):
            return self._type_error(node, path, "a list")
        values = [self.convert(item, args[0], _join(path, i), item.line) for i, item in enumerate(node.items)]
        if any(v is INVALID for v in values):
            return INVALID
        return tuple(values)

    def _convert_mapping(self, node: Node, base: Any, extras: tuple[Any, ...], path: str) -> Any:
        key_hint, value_hint = typing.get_args(base)
        if key_hint is not str:
            raise TypeError(f"{path}: mapping keys must be str, not {key_hint!r}")
        if not isinstance(node, Mapping):
            return self._type_error(node, path, "a mapping")
        key_checks = [extra for extra in extras if isinstance(extra, KeyCheck)]
        result: dict[str, Any] = {}
        ok = True
        for entry in node.entries:
            entry_path = _join(path, entry.key)
            bad_key = next((m for kc in key_checks if (m := kc.test(entry.key)) is not None), None)
            if bad_key is not None:
                self.error(entry.key_line, entry_path, bad_key)
                ok = False
                continue
            value = self.convert(entry.value, value_hint, entry_path, entry.key_line, mapping_key=entry.key)
            if value is INVALID:
                ok = False
            else:
                result[entry.key] = value
        return types.MappingProxyType(result) if ok else INVALID

    def _convert_dataclass(self, node: Node, cls: type, path: str, line: int, mapping_key: str | None) -> Any:
        if not isinstance(node, Mapping):
            return self._type_error(node, path, "a mapping")
        specs = field_specs(cls)
        known = [spec.key for spec in specs if not spec.from_key]
        for written in node.entries:
            if written.key not in known:
                self.error(written.key_line, _join(path, written.key), _suggest(written.key, known))
        kwargs: dict[str, Any] = {}
        ok = True
        for spec in specs:
            if spec.from_key:
                kwargs[spec.name] = mapping_key if mapping_key is not None else ""
                continue
            entry = node.get(spec.key)
            if entry is None:
                if spec.required:
                    self.error(line, _join(path, spec.key), "is required")
                    ok = False
                continue
            value = self.convert(entry.value, spec.hint, _join(path, spec.key), entry.key_line)
            if value is INVALID:
                ok = False
            else:
                kwargs[spec.name] = value
        if not ok:
            return INVALID
        obj = cls(**kwargs)
        cross_check: Callable[[], Iterator[Problem]] | None = getattr(obj, "_cross_check", None)
        if cross_check is not None:
            for problem in cross_check():
                at_line, at_path = locate(node, path, line, problem.at)
                issue = Issue(self.filename, at_line, at_path, problem.message)
                (self.warnings if problem.warning else self.issues).append(issue)
        return obj

    def _convert_union(self, node: Node, base: Any, path: str, line: int, mapping_key: str | None) -> Any:
        members = [m for m in typing.get_args(base) if m is not type(None)]
        optional = len(members) < len(typing.get_args(base))
        if optional and isinstance(node, Scalar) and node.kind == "null":
            return None
        if len(members) == 1:
            return self.convert(node, members[0], path, line, mapping_key=mapping_key)
        if isinstance(node, Mapping):
            classes = [m for m in members if dataclasses.is_dataclass(_unwrap(m)[0])]
            if classes:
                return self._convert_tagged(node, classes, path, line, mapping_key)
        # Scalars and lists: the first member that converts cleanly wins. A number with a fraction
        # tries the integer members last, so `int | float` takes 0.5 as a float, not as an error.
        if isinstance(node, Scalar) and node.kind == "float":
            members = sorted(members, key=lambda m: _unwrap(m)[0] is int)
        for member in members:
            trial = Converter(self.filename, self.base_dir)
            value = trial.convert(node, member, path, line, mapping_key=mapping_key)
            if value is not INVALID:
                self.warnings.extend(trial.warnings)
                return value
            numeric = isinstance(node, Scalar) and node.kind in ("int", "float")
            if numeric and _unwrap(member)[0] in (int, float):
                # A number given to a numeric member: its own complaint (a range) says more.
                self.issues.extend(trial.issues)
                return INVALID
        return self._type_error(node, path, describe(base))

    def _convert_tagged(
        self, node: Mapping, classes: list[Any], path: str, line: int, mapping_key: str | None
    ) -> Any:
        tags = [(cls, *_config_tag(_unwrap(cls)[0])) for cls in classes]
        chosen: list[Any] = []
        for cls, key, value in tags:
            entry = node.get(key)
            if entry is None:
                continue
            if value is None or (isinstance(entry.value, Scalar) and entry.value.text == value):
                chosen.append(cls)
        if len(chosen) == 1:
            return self.convert(node, chosen[0], path, line, mapping_key=mapping_key)
        keys = list(dict.fromkeys(key for _, key, _ in tags))
        by_value = all(value is not None for _, _, value in tags) and len(keys) == 1
        if by_value:
            key = keys[0]
            entry = node.get(key)
            choices = [str(value) for _, _, value in tags]
            if entry is None:
                self.error(line, _join(path, key), "is required (one of: " + ", ".join(choices) + ")")
            else:
                self._convert_choice(entry.value, choices, _join(path, key), lambda s: s)
            return INVALID
        present = [key for key in keys if node.get(key) is not None]
        shown = ", ".join(keys)
        if not present:
            self.error(node.line, path, f"expected exactly one of the keys {shown}; found none")
        else:
            both = " and ".join(f"'{k}'" for k in present)
            self.error(node.line, path, f"expected exactly one of the keys {shown}; found {both}")
        return INVALID


def locate(node: Node, path: str, line: int, at: tuple[str | int, ...]) -> tuple[int, str]:
    """The line and full path of ``at`` below ``node`` (at ``path``, held by the key on ``line``).

    The path is always the full requested one; the line is that of the deepest part present in the
    file, so a problem about a missing key points at its would-be parent.
    """
    current: Node | None = node
    full = path
    for part in at:
        full = _join(full, part)
        if isinstance(part, int) and isinstance(current, Sequence) and 0 <= part < len(current.items):
            current = current.items[part]
            line = current.line
        elif isinstance(part, str) and isinstance(current, Mapping) and current.get(part) is not None:
            found = current.get(part)
            assert found is not None
            current = found.value
            line = found.key_line
        else:
            current = None
    return line, full
