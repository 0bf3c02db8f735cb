"""Every kind of configuration error, in the exact `file:line: path: message` form, all at once."""

from __future__ import annotations

import pytest

from framework.config import ConfigError, Issue, parse_config

# Line numbers matter in this file: each YAML text starts on line 1 with its first key.
VALID = """\
framework:
  name: site
services:
  squid:
    kind: squid
    container:
      image: squid:6
    resources:
      cpus: 1
      mem: 2GiB
    autoscale:
      min: 2
      max: 4
      source: {type: squid}
      target_per_instance: 700
"""


def issues_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "site.yaml")
    return [str(issue) for issue in caught.value.issues]


def test_the_valid_base_parses() -> None:
    config = parse_config(VALID, "site.yaml")
    assert config.services["squid"].autoscale is not None


def test_min_greater_than_max_is_reported_on_the_max_line() -> None:
    text = VALID.replace("max: 4", "max: 1")
    assert issues_of(text) == ["site.yaml:13: services.squid.autoscale.max: must be >= min (2), got 1"]


def test_an_unknown_key_suggests_the_closest_known_key() -> None:
    text = VALID.replace("max: 4", "mxa: 4")
    assert issues_of(text) == [
        "site.yaml:11: services.squid.autoscale.max: is required",
        "site.yaml:13: services.squid.autoscale.mxa: unknown key (did you mean 'max'?)",
    ]


def test_an_unknown_key_without_a_close_match_lists_the_known_keys() -> None:
    text = VALID.replace("  name: site\n", "  name: site\n  colour: blue\n")
    assert issues_of(text) == [
        "site.yaml:3: framework.colour: unknown key; expected one of: name, user, roles, principal, "
        "secret_file, "
        "failover_timeout, master, tls, heartbeat, store, offers, api, local_cluster, executor, "
        "allow_privileged"
    ]


def test_an_unknown_top_level_section_is_an_error() -> None:
    assert issues_of(VALID + "service: {}\n") == [
        "site.yaml:16: service: unknown key (did you mean 'services'?)"
    ]


def test_a_word_where_a_number_belongs() -> None:
    text = VALID.replace("cpus: 1", "cpus: abc")
    assert issues_of(text) == ["site.yaml:9: services.squid.resources.cpus: expected a number, got 'abc'"]


def test_a_float_where_an_integer_belongs() -> None:
    text = VALID.replace("max: 4", "max: 4.5")
    assert issues_of(text) == ["site.yaml:13: services.squid.autoscale.max: expected an integer, got 4.5"]


def test_a_list_where_a_mapping_belongs() -> None:
    text = VALID.replace("    resources:\n      cpus: 1\n      mem: 2GiB\n", "    resources: [1, 2GiB]\n")
    assert issues_of(text) == ["site.yaml:8: services.squid.resources: expected a mapping, got a list"]


def test_an_empty_value_where_a_mapping_belongs() -> None:
    text = VALID.replace("  name: site\n", "  name: site\n  tls:\n")
    assert issues_of(text) == ["site.yaml:3: framework.tls: expected a mapping, got an empty value"]


def test_a_bad_unit_names_the_accepted_ones() -> None:
    text = VALID.replace("mem: 2GiB", "mem: 2 gigs")
    assert issues_of(text) == [
        "site.yaml:10: services.squid.resources.mem: unknown size unit 'gigs' in '2 gigs'; use KiB, "
        "MiB, GiB, TiB "
        "(binary), kB, MB, GB, TB (decimal), B, or K, M, G, T (binary)"
    ]


def test_negative_cpus_are_impossible() -> None:
    text = VALID.replace("cpus: 1", "cpus: -2")
    assert issues_of(text) == ["site.yaml:9: services.squid.resources.cpus: must be > 0, got -2"]


def test_a_missing_required_key_is_reported_on_its_parent_line() -> None:
    text = VALID.replace("      image: squid:6\n", "      user: squid\n")
    assert issues_of(text) == ["site.yaml:6: services.squid.container.image: is required"]


def test_a_choice_outside_the_allowed_values_suggests_the_nearest() -> None:
    text = VALID.replace("kind: squid", "kind: squd")
    assert issues_of(text) == [
        "site.yaml:5: services.squid.kind: expected one of: startd, cvmfs, squid, generic; got 'squd' "
        "(did you mean 'squid'?)"
    ]


def test_a_wrong_type_for_a_union_names_every_alternative() -> None:
    text = VALID.replace("    autoscale:\n", "    instances: many\n    autoscale:\n")
    assert issues_of(text) == [
        "site.yaml:11: services.squid.instances: expected an integer or 'per_host', got 'many'"
    ]


def test_a_negative_count_in_a_union_keeps_the_range_message() -> None:
    text = VALID.replace("    autoscale:\n", "    instances: -1\n    autoscale:\n")
    assert issues_of(text) == ["site.yaml:11: services.squid.instances: must be >= 0, got -1"]


def test_a_cross_field_rule_between_sections() -> None:
    text = VALID.replace("    autoscale:\n", "    instances: 3\n    autoscale:\n")
    assert issues_of(text) == [
        "site.yaml:12: services.squid.autoscale: set either instances or autoscale, not both"
    ]


def test_four_distinct_errors_are_reported_together_in_file_order() -> None:
    text = """\
framework:
  name: site
  heartbeat: {misses: 0}
services:
  squid:
    kind: squid
    container:
      image: squid:6
      netwrk: host
    resources:
      cpus: abc
      mem: 2GiB
    autoscale:
      min: 2
      max: 1
      source: {type: squid}
      target_per_instance: 700
"""
    assert issues_of(text) == [
        "site.yaml:3: framework.heartbeat.misses: must be >= 1, got 0",
        "site.yaml:9: services.squid.container.netwrk: unknown key (did you mean 'network'?)",
        "site.yaml:11: services.squid.resources.cpus: expected a number, got 'abc'",
        "site.yaml:15: services.squid.autoscale.max: must be >= min (2), got 1",
    ]


def test_errors_in_several_services_are_all_reported() -> None:
    text = """\
services:
  a:
    kind: generic
    container: {image: x}
    resources: {cpus: 0, mem: 1}
  b:
    kind: generic
    container: {image: x}
    resources: {cpus: 1, mem: 0}
"""
    assert issues_of(text) == [
        "site.yaml:5: services.a.resources.cpus: must be > 0, got 0",
        "site.yaml:9: services.b.resources.mem: must be > 0, got 0",
    ]


def test_structural_and_schema_errors_are_reported_together() -> None:
    text = VALID.replace("  name: site\n", "  name: site\n  name: again\n").replace("cpus: 1", "cpus: x")
    assert issues_of(text) == [
        "site.yaml:3: framework.name: duplicate key 'name' (first defined on line 2)",
        "site.yaml:10: services.squid.resources.cpus: expected a number, got 'x'",
    ]


def test_str_of_config_error_lists_one_issue_per_line() -> None:
    error = ConfigError(
        [
            Issue("b.yaml", 3, "services.x", "second file"),
            Issue("a.yaml", 9, "framework.name", "later line"),
            Issue("a.yaml", 2, "", "earlier line"),
            Issue("a.yaml", 0, "", "no line"),
        ]
    )
    assert str(error) == (
        "a.yaml: no line\na.yaml:2: earlier line\na.yaml:9: framework.name: later line\nb.yaml:3: "
        "services.x: second file"
    )
    assert isinstance(error, Exception)


def test_a_config_error_needs_an_issue() -> None:
    with pytest.raises(ValueError, match="at least one issue"):
        ConfigError([])


def test_service_names_are_checked() -> None:
    text = VALID.replace("  squid:\n", "  Squid.Proxy:\n")
    assert issues_of(text) == [
        "site.yaml:4: services.Squid.Proxy: service names are lower-case letters, digits, '-' and "
        "'_', starting "
        "with a letter (at most 63 characters), got 'Squid.Proxy'"
    ]


def test_issue_paths_index_list_items() -> None:
    text = VALID + "    constraints:\n      - {unique: hostname}\n      - {max_per: rack, count: 0}\n"
    assert issues_of(text) == ["site.yaml:18: services.squid.constraints[1].count: must be >= 1, got 0"]
