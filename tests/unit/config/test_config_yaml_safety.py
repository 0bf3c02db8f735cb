"""Hostile or broken YAML ends in a ConfigError with a line, never in a traceback or a hang."""

from __future__ import annotations

import textwrap

import pytest

from framework.config import ConfigError, load_config, parse_config
from framework.config.yamltree import MAX_DEPTH, MAX_DOCUMENT_BYTES, Mapping, Scalar, Sequence, read_tree

SERVICE = """\
services:
  web:
    kind: generic
    container: {image: nginx}
    resources: {cpus: 1, mem: 64}
"""


def issues_of(text: str, filename: str = "site.yaml") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, filename)
    return [str(issue) for issue in caught.value.issues]


def test_a_billion_laughs_document_is_refused_at_its_first_anchor() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for name, prev in zip("bcdefghi", "abcdefgh", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    assert issues_of("\n".join(lines) + "\n") == [
        "site.yaml:1: anchors (&a) and aliases are not allowed; write the value out in full"
    ]


def test_an_alias_without_anchor_is_refused_with_its_line() -> None:
    assert issues_of("framework:\n  name: *x\n") == [
        "site.yaml:2: aliases (*x) are not allowed; write the value out in full"
    ]


def test_python_object_tags_are_refused_and_nothing_is_constructed() -> None:
    text = SERVICE + "    instances: !!python/object/apply:os.system ['touch /tmp/pwned']\n"
    assert issues_of(text) == [
        "site.yaml:6: services.web.instances: tag !!python/object/apply:os.system is not allowed",
    ]


def test_local_tags_on_scalars_are_refused_too() -> None:
    assert issues_of("framework:\n  name: !secret x\n") == [
        "site.yaml:2: framework.name: tag !secret is not allowed"
    ]


def test_explicit_core_tags_are_honoured() -> None:
    config = parse_config("framework:\n  name: !!str 123\n" + SERVICE, "site.yaml")
    assert config.framework.name == "123"


def test_an_explicit_core_tag_that_does_not_fit_is_an_error() -> None:
    assert issues_of("framework:\n  heartbeat: {misses: !!int many}\n") == [
        "site.yaml:2: framework.heartbeat.misses: 'many' is not a valid !!int",
    ]


def test_duplicate_keys_are_errors_naming_the_first_definition() -> None:
    text = SERVICE + "    kind: squid\n"
    assert issues_of(text) == [
        "site.yaml:6: services.web.kind: duplicate key 'kind' (first defined on line 3)"
    ]


def test_a_second_document_is_refused() -> None:
    assert issues_of(SERVICE + "---\nservices: {}\n") == [
        "site.yaml:6: only one YAML document per file is allowed (found '---')"
    ]


def test_an_integer_with_a_hundred_digits_is_too_large_not_a_crash() -> None:
    text = SERVICE + f"    instances: {10**100}\n"
    assert issues_of(text) == [
        f"site.yaml:6: services.web.instances: number too large: {str(10**100)[:20]}... (101 characters)"
    ]


def test_an_integer_just_beyond_int64_is_too_large() -> None:
    text = "framework:\n  heartbeat: {misses: 9223372036854775808}\n"
    assert issues_of(text) == [
        "site.yaml:2: framework.heartbeat.misses: number too large: 9223372036854775808"
    ]


def test_a_float_that_overflows_to_infinity_is_too_large() -> None:
    text = SERVICE.replace("cpus: 1", "cpus: 1e400")
    assert issues_of(text) == ["site.yaml:5: services.web.resources.cpus: number too large: 1e400"]


def test_a_duration_that_overflows_is_too_large() -> None:
    assert issues_of("framework:\n  failover_timeout: 1e400\n") == [
        "site.yaml:2: framework.failover_timeout: too large: inf is more than 100 years"
    ]


def test_an_integer_of_a_million_digits_is_handled_quickly() -> None:
    text = "framework:\n  heartbeat: {misses: " + "9" * 1_000_000 + "}\n"
    (issue,) = issues_of(text)
    assert issue.startswith(
        "site.yaml:2: framework.heartbeat.misses: number too large: 99999999999999999999..."
    )


def test_nan_is_not_a_number_here() -> None:
    assert issues_of(SERVICE.replace("cpus: 1", "cpus: .nan")) == [
        "site.yaml:5: services.web.resources.cpus: expected a number, got .nan"
    ]


def test_truncated_yaml_reports_the_parser_line() -> None:
    text = "framework:\n  name: x\n  roles: [a, b\n"
    assert issues_of(text) == [
        "site.yaml:4: invalid YAML: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence on line 3)"
    ]


def test_bad_indentation_reports_the_parser_line() -> None:
    text = "framework:\n  name: x\n user: y\n"
    (issue,) = issues_of(text)
    assert issue.startswith("site.yaml:3: invalid YAML: ")


def test_an_unterminated_quote_is_a_yaml_error() -> None:
    (issue,) = issues_of('framework:\n  name: "steward\n')
    assert issue.startswith("site.yaml:3: invalid YAML: found unexpected end of stream")


def test_control_characters_are_refused() -> None:
    assert issues_of("framework:\n  name: a\x07b\n") == [
        "site.yaml:2: invalid YAML: unacceptable character #x0007"
    ]


def test_a_list_at_the_top_level_is_a_clear_error() -> None:
    assert issues_of("- a\n- b\n") == [
        "site.yaml:1: expected a mapping with the sections 'framework' and 'services', got a list"
    ]


def test_a_scalar_at_the_top_level_is_a_clear_error() -> None:
    assert issues_of("hello\n") == [
        "site.yaml:1: expected a mapping with the sections 'framework' and 'services', got the value 'hello'"
    ]


def test_an_empty_file_is_an_error() -> None:
    assert issues_of("# only a comment\n") == [
        "site.yaml:1: the file is empty; expected a mapping with the sections 'framework' and 'services'"
    ]


def test_documents_over_one_mebibyte_are_refused_before_parsing() -> None:
    text = "framework:\n  name: x\n" + "#" * MAX_DOCUMENT_BYTES
    assert issues_of(text) == ["site.yaml: document larger than 1024 KiB"]


def test_deep_nesting_is_refused_without_recursion_errors() -> None:
    assert issues_of("a: " + "[" * 100_000) == [
        f"site.yaml:1: nesting deeper than {MAX_DEPTH} levels is not allowed"
    ]


def test_nesting_at_the_limit_is_read() -> None:
    root, issues = read_tree("[" * MAX_DEPTH + "]" * MAX_DEPTH, "x.yaml")
    assert issues == []
    depth = 0
    node = root
    while isinstance(node, Sequence):
        depth += 1
        node = node.items[0] if node.items else None
    assert depth == MAX_DEPTH


def test_non_string_keys_are_refused() -> None:
    assert issues_of("? [a, b]\n: c\n") == [
        "site.yaml:1: mapping keys must be plain strings, not lists or mappings"
    ]


def test_null_keys_are_refused() -> None:
    assert issues_of("~: c\n") == ["site.yaml:1: a mapping key is missing (empty or null key)"]


def test_plain_scalars_follow_the_yaml_1_2_core_schema() -> None:
    root, issues = read_tree(
        "v: [yes, no, on, 1:20, 010, 0x1f, 0o17, 1e3, .inf, -.5, ~, '', true, False]\n", "x.yaml"
    )
    assert issues == []
    assert isinstance(root, Mapping)
    entry = root.get("v")
    assert entry is not None and isinstance(entry.value, Sequence)
    scalars = [item for item in entry.value.items if isinstance(item, Scalar)]
    assert [(s.kind, s.value) for s in scalars] == [
        ("str", "yes"),
        ("str", "no"),
        ("str", "on"),
        ("str", "1:20"),
        ("int", 10),
        ("int", 31),
        ("int", 15),
        ("float", 1000.0),
        ("float", float("inf")),
        ("float", -0.5),
        ("null", None),
        ("str", ""),
        ("bool", True),
        ("bool", False),
    ]


def test_yes_is_not_a_boolean() -> None:
    text = SERVICE.replace("{image: nginx}", "{image: nginx, privileged: yes}")
    issues = issues_of(text)
    assert issues == ["site.yaml:4: services.web.container.privileged: expected true or false, got 'yes'"]


def test_load_config_names_a_missing_file(tmp_path: pytest.TempPathFactory) -> None:
    missing = f"{tmp_path}/nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing)
    assert [str(i) for i in caught.value.issues] == [
        f"{missing}: cannot read the file: No such file or directory"
    ]


def test_load_config_refuses_a_directory(tmp_path: pytest.TempPathFactory) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(str(tmp_path))
    (issue,) = caught.value.issues
    assert issue.file == str(tmp_path)
    assert issue.message in ("not a regular file", "cannot read the file: Is a directory")


def test_load_config_refuses_invalid_utf8_with_the_line(tmp_path: pytest.TempPathFactory) -> None:
    path = f"{tmp_path}/bad.yaml"
    with open(path, "wb") as handle:
        handle.write(b"framework:\n  name: caf\xe9\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [str(i) for i in caught.value.issues] == [f"{path}:2: the file is not valid UTF-8"]


def test_load_config_refuses_a_huge_file_without_reading_it_all(tmp_path: pytest.TempPathFactory) -> None:
    path = f"{tmp_path}/huge.yaml"
    with open(path, "wb") as handle:
        handle.write(b"#" * (MAX_DOCUMENT_BYTES + 10))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [str(i) for i in caught.value.issues] == [f"{path}: document larger than 1024 KiB"]


def test_load_config_reads_a_valid_file(tmp_path: pytest.TempPathFactory) -> None:
    path = f"{tmp_path}/site.yaml"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(textwrap.dedent(SERVICE))
    config = load_config(path)
    assert list(config.services) == ["web"]
