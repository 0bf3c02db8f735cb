"""The schema machinery itself: conventions every config class follows, extension by one field,
addresses, and a fuzz test that no input escapes as anything but a ConfigError."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import string
from dataclasses import dataclass
from typing import Annotated

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from framework.config import ConfigError, MasterAddress, model, parse_config, parse_host_port, parse_master
from framework.config.schema import INVALID, Converter, Duration, SizeMiB, at_least, field_specs
from framework.config.yamltree import read_tree

CONFIG_CLASSES = [
    cls
    for _, cls in inspect.getmembers(model, inspect.isclass)
    if dataclasses.is_dataclass(cls) and cls.__module__ == model.__name__
]


def test_the_model_module_defines_the_config_classes() -> None:
    names = {cls.__name__ for cls in CONFIG_CLASSES}
    assert {"Config", "FrameworkConfig", "ServiceConfig", "AutoscaleConfig", "ContainerConfig"} <= names


@pytest.mark.parametrize("cls", CONFIG_CLASSES, ids=lambda c: c.__name__)
def test_every_config_class_is_frozen_slotted_and_keyword_only(cls: type) -> None:
    params = cls.__dataclass_params__  # type: ignore[attr-defined]
    assert params.frozen
    assert "__slots__" in cls.__dict__
    assert all(f.kw_only for f in dataclasses.fields(cls))


@pytest.mark.parametrize("cls", CONFIG_CLASSES, ids=lambda c: c.__name__)
def test_every_config_class_has_a_valid_schema_with_distinct_keys(cls: type) -> None:
    keys = [spec.key for spec in field_specs(cls)]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("cls", CONFIG_CLASSES, ids=lambda c: c.__name__)
def test_every_configurable_field_has_an_attribute_docstring(cls: type) -> None:
    source = ast.parse(inspect.getsource(cls))
    (class_def,) = [node for node in source.body if isinstance(node, ast.ClassDef)]
    documented = set()
    body = class_def.body
    for node, following in zip(body, [*body[1:], None], strict=True):
        is_field = isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
        if is_field and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
            assert isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
            documented.add(node.target.id)
    wanted = {spec.name for spec in field_specs(cls) if not spec.from_key}
    assert wanted - documented == set()


def test_unit_suffixes_are_enforced_on_attribute_names() -> None:
    @dataclass(frozen=True, slots=True, kw_only=True)
    class Bad:
        timeout: Duration = 1.0

    with pytest.raises(TypeError, match="must end in _s or _seconds"):
        field_specs(Bad)

    @dataclass(frozen=True, slots=True, kw_only=True)
    class AlsoBad:
        memory: SizeMiB = 1.0

    with pytest.raises(TypeError, match="must end in _mib"):
        field_specs(AlsoBad)


def test_a_new_setting_is_one_annotated_field() -> None:
    """What a later issue does to add a section: declare it, and conversion and errors follow."""

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Cooldown:
        down_s: Duration = 300.0
        """Wait this long after scaling before scaling down."""
        votes: Annotated[int, at_least(1)] = 3
        """Consecutive down-votes needed."""
        buffer_mib: SizeMiB = 0.0
        """Memory to keep free."""

    converter = Converter("x.yaml")
    root, issues = read_tree("down: 10m\nbuffer: 1GiB\n", "x.yaml")
    assert issues == [] and root is not None
    assert converter.convert(root, Cooldown, "cooldown", 1) == Cooldown(down_s=600.0, buffer_mib=1024.0)

    root, _ = read_tree("down: soon\nvotes: 0\nvote: 1\n", "x.yaml")
    assert root is not None
    assert converter.convert(root, Cooldown, "cooldown", 1) is INVALID
    assert [str(i) for i in converter.issues] == [
        "x.yaml:3: cooldown.vote: unknown key (did you mean 'votes'?)",
        "x.yaml:1: cooldown.down: expected a duration such as '30s', '5m', '1.5h', '250ms', '2d' or a "
        "number of seconds, got 'soon'",
        "x.yaml:2: cooldown.votes: must be >= 1, got 0",
    ]


# -- addresses ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("local", MasterAddress("local")),
        ("http://m1:5050", MasterAddress("http", (("m1", 5050),))),
        ("HTTPS://m1,m2:5051/", MasterAddress("https", (("m1", 5050), ("m2", 5051)))),
        ("zk://zk1,zk2:2182/mesos", MasterAddress("zk", (("zk1", 2181), ("zk2", 2182)), "/mesos")),
        ("http://[::1]:5050", MasterAddress("http", (("::1", 5050),))),
        ("http://10.0.0.1:5050", MasterAddress("http", (("10.0.0.1", 5050),))),
    ],
)
def test_master_forms(text: str, expected: MasterAddress) -> None:
    assert parse_master(text) == expected


def test_master_addresses_render_back_and_give_urls() -> None:
    address = parse_master("https://m1:5050,[::1]:5051")
    assert str(address) == "https://m1:5050,[::1]:5051"
    assert address.urls() == ("https://m1:5050", "https://[::1]:5051")
    assert str(parse_master("zk://zk1:2181/mesos")) == "zk://zk1:2181/mesos"
    assert parse_master("zk://zk1:2181/mesos").urls() == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected 'local'"),
        ("http://", "expected 'local'"),
        ("http://m1:5050,m1:5050", "lists the same host twice"),
        ("zk://zk1/", "needs a znode path"),
        ("zk://a:b@zk1/mesos", "credentials in the master address are not supported"),
        ("mesos://admin:hunter2@m1", "credentials in the master address are not supported"),
        ("http://::1:5050", "write IPv6 addresses in brackets"),
        ("http://[zz::1]:5050", "invalid IPv6 address"),
        ("http://m1:0", "port out of range"),
    ],
)
def test_bad_master_forms(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        parse_master(text)


def test_host_port_parsing() -> None:
    assert parse_host_port("a.example.org:80") == ("a.example.org", 80)
    assert parse_host_port("cm", default_port=9618) == ("cm", 9618)
    assert parse_host_port("127.0.0.1:0", allow_port_zero=True) == ("127.0.0.1", 0)
    with pytest.raises(ValueError, match="expected host:port"):
        parse_host_port("cm")
    with pytest.raises(ValueError, match="invalid port"):
        parse_host_port("cm:http")


# -- fuzzing --------------------------------------------------------------------------------------------

YAMLISH = st.text(alphabet=string.printable + "äé€", max_size=200)
FRAGMENTS = st.lists(
    st.sampled_from(
        [
            "framework:\n",
            "services:\n",
            "  squid:\n",
            "    kind: squid\n",
            "    container: {image: s}\n",
            "    resources: {cpus: 1, mem: 1GiB}\n",
            "    autoscale: {max: 1, min: 3}\n",
            "  name: x\n",
            "  - a\n",
            "&a ",
            "*a ",
            "!!python/object ",
            "[",
            "]",
            "{",
            "}",
            ": ",
            "---\n",
            "'",
            '"',
            "1e400",
            "    constraints: [{unique: hostname, spread: x}]\n",
            "    instances: per_host\n",
            "\t",
            "? ",
        ]
    ),
    max_size=25,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(YAMLISH, FRAGMENTS))
def test_any_text_either_parses_or_raises_config_error(text: str) -> None:
    try:
        parse_config(text, "fuzz.yaml")
    except ConfigError as exc:
        assert exc.issues
        assert all(issue.file == "fuzz.yaml" for issue in exc.issues)
        assert all(issue.line >= 0 for issue in exc.issues)


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(
        ["per_host", "hostname", "squid", "cvmfs", "startd", "1GiB", "30s", "http", "bridge", "/cvmfs"]
    ),
)
_SERVICE_KEYS = st.sampled_from(
    [
        *("kind", "container", "image", "resources", "cpus", "mem", "ports", "fixed_ports", "instances"),
        *(
            "autoscale",
            "min",
            "max",
            "source",
            "type",
            "params",
            "target_per_instance",
            "constraints",
            "unique",
        ),
        *(
            "max_per",
            "count",
            "attribute",
            "like",
            "spread",
            "health_check",
            "port",
            "path",
            "command",
            "startd",
        ),
        *(
            "condor_host",
            "pool_token_file",
            "volumes",
            "container_path",
            "propagation",
            "privileged",
            "network",
        ),
        *(
            "port_mappings",
            "container_port",
            "environment",
            "secret_files",
            "target",
            "role",
            "restart_backoff",
        ),
    ]
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_SERVICE_KEYS, inner, max_size=5)),
    max_leaves=25,
)


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["a", "svc"]), st.dictionaries(_SERVICE_KEYS, _VALUES, max_size=8), max_size=2
    )
)
def test_any_shape_of_services_either_parses_or_raises_config_error(services: dict[str, object]) -> None:
    """Well-formed YAML, arbitrary shapes and values deep in the schema (cross-field checks included)."""
    text = yaml.safe_dump({"services": services})
    try:
        parse_config(text, "fuzz.yaml")
    except ConfigError as exc:
        assert all(issue.line >= 1 for issue in exc.issues)
