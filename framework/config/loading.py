"""Reading a site file: bytes -> safe YAML tree -> defaults -> typed :class:`Config`, or one error.

This is the only module of the configuration layer that touches the filesystem (plus
:func:`read_secret`, which the runtime calls when it connects, so a secret is read as late as
possible and never kept in a configuration object).
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import replace
from pathlib import Path

from framework.config.defaults import apply_defaults
from framework.config.errors import ConfigError, Issue
from framework.config.model import Config
from framework.config.schema import INVALID, Converter
from framework.config.yamltree import MAX_DOCUMENT_BYTES, Mapping, Node, Scalar, read_tree

__all__ = ["load_config", "parse_config", "read_secret"]

log = logging.getLogger(__name__)

_TOP_LEVEL_HINT = "expected a mapping with the sections 'framework' and 'services'"


def parse_config(text: str, filename: str = "<string>", *, base_dir: str | Path | None = None) -> Config:
    """Validate ``text`` and return the configuration; raise :class:`ConfigError` listing every issue.

    ``filename`` is only used in messages. Relative local paths (``secret_file``, ``tls.ca_bundle``,
    ``store.path``) are resolved against ``base_dir``, by default the directory of ``filename``.
    Warnings (allowed but unwise settings) are logged and kept in ``Config.warnings``.
    """
    if base_dir is None:
        base_dir = Path(filename).parent if filename != "<string>" else Path()
    root, issues = read_tree(text, filename)
    if root is None:
        if not issues:
            issues = [Issue(filename, 1, "", f"the file is empty; {_TOP_LEVEL_HINT}")]
        raise ConfigError(issues)
    if not isinstance(root, Mapping):
        issues.append(Issue(filename, root.line, "", f"{_TOP_LEVEL_HINT}, got {_describe_top(root)}"))
        raise ConfigError(issues)
    converter = Converter(filename, os.path.abspath(base_dir))
    config = converter.convert(apply_defaults(root), Config, "", root.line)
    issues.extend(converter.issues)
    if issues or config is INVALID:
        raise ConfigError(issues)
    assert isinstance(config, Config)
    for warning in converter.warnings:
        log.warning("configuration warning: %s", warning)
    return replace(config, warnings=tuple(sorted(converter.warnings, key=lambda i: i.line)))


def _describe_top(node: Node) -> str:
    if isinstance(node, Scalar):
        return f"the value {node.text[:40]!r}"
    return "a list"


def load_config(path: str | Path) -> Config:
    """Read and validate the file at ``path``; raise :class:`ConfigError` (also for unreadable files)."""
    name = str(path)
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ConfigError([Issue(name, 0, "", "not a regular file")])
            data = handle.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise ConfigError([Issue(name, 0, "", f"cannot read the file: {exc.strerror or exc}")]) from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise ConfigError([Issue(name, 0, "", f"document larger than {MAX_DOCUMENT_BYTES // 1024} KiB")])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError([Issue(name, line, "", "the file is not valid UTF-8")]) from None
    return parse_config(text, name, base_dir=Path(path).parent)


def read_secret(path: str | Path) -> str:
    """Return the secret stored in ``path`` without its trailing newline.

    The content is never logged or put into an exception. Raises ``OSError`` when the file cannot be
    read and ``ValueError`` when it is empty; logs a warning (naming only the path) when the file is
    readable by other users.
    """
    with open(path, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        data = handle.read(64 * 1024 + 1)
    if len(data) > 64 * 1024:
        raise ValueError(f"secret file {os.fspath(path)} is larger than 64 KiB; is it the right file?")
    if mode & stat.S_IROTH:
        log.warning("secret file %s is readable by every user on this machine", os.fspath(path))
    try:
        secret = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"secret file {os.fspath(path)} is not valid UTF-8") from None
    secret = secret.removesuffix("\n").removesuffix("\r")
    if not secret:
        raise ValueError(f"secret file {os.fspath(path)} is empty")
    return secret
