"""Safe YAML reading: text in, a small tree of nodes with line numbers out, never Python objects.

Configuration files come from operators and sometimes from other tools, so the reader trusts
nothing in them. It builds on PyYAML's pure-Python reader, scanner, parser and composer, and never
runs a constructor, so no tag can instantiate anything. On top of that it refuses, with the line:

* documents larger than :data:`MAX_DOCUMENT_BYTES` and nesting deeper than :data:`MAX_DEPTH`
  (the composer is recursive; a million ``[`` must not become a ``RecursionError``);
* anchors and aliases (``&a`` / ``*a``): they are the vehicle of "billion laughs" expansion bombs
  and buy little in a configuration file; the first anchor stops the read at once;
* any explicit tag other than the YAML core ones (``!!str !!int !!float !!bool !!null !!map
  !!seq``), e.g. ``!!python/object``;
* more than one document in the stream;
* duplicate keys in a mapping, and keys that are not scalars or are null.

Plain scalars are typed by the YAML 1.2 core schema, not PyYAML's YAML 1.1 rules: ``yes``, ``on``
and ``no`` stay strings, ``1:20`` is not the integer 80, ``010`` is 10, and ``1e3`` is a float. The
converter (``framework.config.schema``) decides what a field accepts; this module only says what
the text literally is.

Structural problems that do not stop the read (a duplicate key, a bad tag) are returned as issues
next to the tree so they are reported together with schema errors; problems that make the rest of
the document meaningless (syntax errors, anchors, depth, size, several documents) end the read and
are returned alone.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Final, Literal

import yaml
from yaml.composer import Composer
from yaml.error import MarkedYAMLError, YAMLError
from yaml.events import AliasEvent, NodeEvent
from yaml.nodes import MappingNode as YamlMappingNode
from yaml.nodes import Node as YamlNode
from yaml.nodes import ScalarNode as YamlScalarNode
from yaml.nodes import SequenceNode as YamlSequenceNode
from yaml.parser import Parser
from yaml.reader import Reader, ReaderError
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from framework.config.errors import Issue

__all__ = [
    "MAX_DEPTH",
    "MAX_DOCUMENT_BYTES",
    "Entry",
    "Mapping",
    "Node",
    "Scalar",
    "ScalarKind",
    "Sequence",
    "read_tree",
]

MAX_DOCUMENT_BYTES: Final = 1024 * 1024
"""Largest accepted document (1 MiB); a site file is a few KiB."""

MAX_DEPTH: Final = 32
"""Deepest accepted nesting of mappings and lists; the schema itself nests fewer than ten levels."""

MAX_INT_DIGITS: Final = 40
"""Integer literals longer than this are kept as text only (``Scalar.value is None``) and reported
as too large by the converter; Python would otherwise refuse to parse ints over 4300 digits."""

ScalarKind = Literal["null", "bool", "int", "float", "str", "invalid"]
"""``invalid`` stands for a value whose problem (a refused tag) is already reported: the converter
skips it silently instead of piling a second error on the same spot."""


@dataclass(frozen=True, slots=True)
class Scalar:
    """A scalar exactly as written, with the type the YAML 1.2 core schema gives it."""

    kind: ScalarKind
    value: bool | int | float | str | None
    """The typed value; ``None`` for null and for integer literals too long to be a sensible number."""
    text: str
    """The source text (after YAML unquoting), used when a string field receives ``1.10``."""
    line: int


@dataclass(frozen=True, slots=True)
class Entry:
    """One ``key: value`` pair of a mapping, with the key's own line for unknown-key reports."""

    key: str
    key_line: int
    value: Node


@dataclass(frozen=True, slots=True)
class Mapping:
    """A mapping in source order, duplicate keys already removed (and reported)."""

    entries: tuple[Entry, ...]
    line: int

    def get(self, key: str) -> Entry | None:
        """Return the entry for ``key`` or ``None``."""
        for entry in self.entries:
            if entry.key == key:
                return entry
        return None

    def keys(self) -> tuple[str, ...]:
        """The keys in source order."""
        return tuple(entry.key for entry in self.entries)


@dataclass(frozen=True, slots=True)
class Sequence:
    """A list in source order."""

    items: tuple[Node, ...]
    line: int


Node = Scalar | Mapping | Sequence

_CORE: Final = "tag:yaml.org,2002:"
_PLAIN_TAG: Final = "steward:plain"
_ALLOWED_SCALAR_TAGS: Final[dict[str, ScalarKind | None]] = {
    _CORE + "str": "str",
    _CORE + "int": "int",
    _CORE + "float": "float",
    _CORE + "bool": "bool",
    _CORE + "null": "null",
    _PLAIN_TAG: None,
}

# YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution).
_NULL_RE: Final = re.compile(r"~|null|Null|NULL|")
_BOOL_RE: Final = re.compile(r"true|True|TRUE|false|False|FALSE")
_INT_RE: Final = re.compile(r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+")
_FLOAT_RE: Final = re.compile(
    r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN"
)


class _Refused(Exception):
    """The document uses a construct that ends the read; carries the line and the reason."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _Loader(Reader, Scanner, Parser, Composer, BaseResolver):
    """PyYAML's pure-Python front end with no constructor and with guarded composition."""

    def __init__(self, text: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        BaseResolver.__init__(self)
        self.depth = 0

    def resolve(self, kind: type[YamlNode], value: str | None, implicit: tuple[bool, bool]) -> str:
        """Tag plain scalars for core-schema typing later; quoted scalars are strings."""
        if kind is YamlScalarNode:
            return _PLAIN_TAG if implicit[0] else _CORE + "str"
        if kind is YamlSequenceNode:
            return str(self.DEFAULT_SEQUENCE_TAG)
        return str(self.DEFAULT_MAPPING_TAG)

    def compose_node(self, parent: YamlNode | None, index: int) -> YamlNode | None:
        """Refuse aliases, anchors and deep nesting before PyYAML composes anything."""
        event = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1
        if isinstance(event, AliasEvent):
            raise _Refused(line, f"aliases (*{event.anchor}) are not allowed; write the value out in full")
        if isinstance(event, NodeEvent) and event.anchor is not None:
            raise _Refused(
                line,
                f"anchors (&{event.anchor}) and aliases are not allowed; write the value out in full",
            )
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Refused(line, f"nesting deeper than {MAX_DEPTH} levels is not allowed")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _syntax_issue(filename: str, text: str, exc: YAMLError) -> Issue:
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        problem = exc.problem or exc.context or "malformed document"
        if exc.problem == "expected a single document in the stream" or (
            exc.context == "expected a single document in the stream"
        ):
            return Issue(filename, line, "", "only one YAML document per file is allowed (found '---')")
        detail = problem
        if exc.context and exc.problem and exc.context_mark is not None:
            detail = f"{problem} ({exc.context} on line {exc.context_mark.line + 1})"
        return Issue(filename, line, "", f"invalid YAML: {detail}")
    if isinstance(exc, ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        return Issue(filename, line, "", f"invalid YAML: unacceptable character #x{exc.character:04x}")
    return Issue(filename, 0, "", f"invalid YAML: {exc}")


def read_tree(text: str, filename: str) -> tuple[Node | None, list[Issue]]:
    """Parse ``text`` into a :data:`Node` tree and the structural issues found.

    Returns ``(None, issues)`` when the document could not be read at all (``issues`` is then never
    empty) and ``(None, [])`` for an empty document (no content, or only comments).
    """
    if len(text) > MAX_DOCUMENT_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_DOCUMENT_BYTES:
        return None, [Issue(filename, 0, "", f"document larger than {MAX_DOCUMENT_BYTES // 1024} KiB")]
    loader: _Loader | None = None
    try:
        loader = _Loader(text)
        root = loader.get_single_node()
    except _Refused as refused:
        return None, [Issue(filename, refused.line, "", refused.message)]
    except YAMLError as exc:
        return None, [_syntax_issue(filename, text, exc)]
    except RecursionError:  # pragma: no cover - MAX_DEPTH keeps the composer far from the limit
        return None, [Issue(filename, 0, "", f"nesting deeper than {MAX_DEPTH} levels is not allowed")]
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        return None, []
    issues: list[Issue] = []
    return _convert(root, filename, issues, ""), issues


def _convert(node: YamlNode, filename: str, issues: list[Issue], path: str) -> Node:
    line = node.start_mark.line + 1
    if isinstance(node, YamlScalarNode):
        return _scalar(node, filename, issues, path)
    if isinstance(node, YamlSequenceNode):
        if not _tag_ok(node, _CORE + "seq", filename, issues, path):
            return Scalar("invalid", None, "", line)
        items = (_convert(item, filename, issues, f"{path}[{i}]") for i, item in enumerate(node.value))
        return Sequence(tuple(items), line)
    assert isinstance(node, YamlMappingNode)
    if not _tag_ok(node, _CORE + "map", filename, issues, path):
        return Scalar("invalid", None, "", line)
    entries: list[Entry] = []
    first_line: dict[str, int] = {}
    for key_node, value_node in node.value:
        key_line = key_node.start_mark.line + 1
        if not isinstance(key_node, YamlScalarNode):
            issues.append(
                Issue(filename, key_line, path, "mapping keys must be plain strings, not lists or mappings")
            )
            continue
        key = _scalar(key_node, filename, issues, path)
        if key.kind == "null":
            issues.append(Issue(filename, key_line, path, "a mapping key is missing (empty or null key)"))
            continue
        if key.text in first_line:
            issues.append(
                Issue(
                    filename,
                    key_line,
                    _join(path, key.text),
                    f"duplicate key '{key.text}' (first defined on line {first_line[key.text]})",
                )
            )
            continue
        first_line[key.text] = key_line
        entries.append(
            Entry(key.text, key_line, _convert(value_node, filename, issues, _join(path, key.text)))
        )
    return Mapping(tuple(entries), line)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _tag_ok(node: YamlNode, expected: str, filename: str, issues: list[Issue], path: str) -> bool:
    if node.tag == expected:
        return True
    line = node.start_mark.line + 1
    issues.append(Issue(filename, line, path, f"tag {_show_tag(node.tag)} is not allowed"))
    return False


def _show_tag(tag: str) -> str:
    return "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag


def _scalar(node: YamlScalarNode, filename: str, issues: list[Issue], path: str) -> Scalar:
    line = node.start_mark.line + 1
    text: str = node.value
    if node.tag not in _ALLOWED_SCALAR_TAGS:
        issues.append(Issue(filename, line, path, f"tag {_show_tag(node.tag)} is not allowed"))
        return Scalar("invalid", None, text, line)
    explicit = _ALLOWED_SCALAR_TAGS[node.tag]
    if explicit == "str":
        return Scalar("str", text, text, line)
    kind = _core_kind(text)
    if explicit is not None and kind != explicit and not (explicit == "float" and kind == "int"):
        issues.append(Issue(filename, line, path, f"'{text}' is not a valid {_show_tag(node.tag)}"))
        return Scalar("invalid", None, text, line)
    if explicit == "float":
        kind = "float"
    return Scalar(kind, _typed_value(kind, text), text, line)


def _core_kind(text: str) -> ScalarKind:
    if _NULL_RE.fullmatch(text):
        return "null"
    if _BOOL_RE.fullmatch(text):
        return "bool"
    if _INT_RE.fullmatch(text):
        return "int"
    if _FLOAT_RE.fullmatch(text):
        return "float"
    return "str"


def _typed_value(kind: ScalarKind, text: str) -> Any:
    if kind == "null":
        return None
    if kind == "bool":
        return text.lower() == "true"
    if kind == "int":
        digits = text.lstrip("+-")
        if len(digits) > MAX_INT_DIGITS:
            return None
        if digits.startswith("0x"):
            return int(digits, 16)
        if digits.startswith("0o"):
            return int(digits[2:], 8)
        value = int(digits, 10)
        return -value if text.startswith("-") else value
    if kind == "float":
        lowered = text.lower()
        if lowered.endswith(".inf"):
            return -math.inf if lowered.startswith("-") else math.inf
        if lowered == ".nan":
            return math.nan
        return float(text)
    return text


def dump_hint(value: object) -> str:
    """Render a Python value the way YAML would show it, for messages (``true``, ``'abc'``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
