"""A running Steward refuses every broken site file it is asked to reload, says exactly what is wrong,
and keeps running what it ran.

``steward run`` runs as a real process (``master: local``: the embedded cluster with the simulated
containerizer) with one fixed-count service of two instances. Its site file is then replaced by
broken ones and Steward is asked to reload each, once with SIGHUP (the answer is in its log) and once
with ``POST /v1/reload`` (the answer is the response): malformed and truncated YAML, an empty file, a
binary file, non-UTF-8 bytes, wrong types, numbers too large for any field (``1e400``, ``10**100``
instances), negative values, unknown keys at four depths, a YAML alias bomb, nesting thousands of
levels deep, a 10 MB file, duplicate keys, a file that disappeared and a directory where the file
was. A hypothesis property does the same for random combinations of wrong values and unknown keys.

Proves, for every one:

* the reload is refused with an error that names the file, the line and the field path where the
  problem has them (the exact text is asserted);
* the running configuration stays: the API shows the same desired count, and the same tasks keep
  running (same task IDs before and after);
* Steward is still healthy and a valid file still applies afterwards (a no-op reload after each case;
  at the end a real change, three instances, reaches the cluster and the old tasks stay).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

WAIT = 30.0
TOKEN = "badinput-t0ken"


def valid_site(directory: Path, instances: int = 2) -> str:
    """The site file Steward starts with; the expected errors below name its lines by number."""
    return f"""\
framework:
  name: badinput-site
  roles: [site]
  master: local
  store: {{type: file, path: {directory / "state"}}}
  api: {{listen: 127.0.0.1:0, token_file: {directory / "token"}}}
  local_cluster: {{agents: 2, containerizer: simulated, listen: 127.0.0.1:0}}
services:
  web:
    kind: generic
    instances: {instances}
    container: {{image: example/web:1}}
    resources: {{cpus: 0.5, mem: 64MiB}}
"""


@dataclass
class Steward:
    """``steward run`` in a subprocess, its site file, its log and its API."""

    process: subprocess.Popen[bytes]
    site: Path
    log: Path
    api: str
    directory: Path

    def log_text(self, start: int = 0) -> str:
        with open(self.log, "rb") as handle:
            handle.seek(start)
            return handle.read().decode("utf-8", "replace")

    def log_size(self) -> int:
        return self.log.stat().st_size

    def get(self, path: str) -> Any:
        response = requests.get(self.api + path, timeout=10)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()

    def reload_by_api(self) -> requests.Response:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        return requests.post(self.api + "/v1/reload", headers=headers, timeout=WAIT)

    def reload_by_sighup(self, wanted: str | None) -> list[str]:
        """SIGHUP, then wait for the outcome in the log: a refusal starting with ``wanted``, or (for
        None) the new configuration applied. Returns every refusal logged meanwhile."""
        start = self.log_size()
        self.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + WAIT
        refused: list[str] = []
        while time.monotonic() < deadline:
            text = self.log_text(start)
            refused = re.findall(r"reload refused, the running configuration stays: (.*)", text)
            if wanted is None and "configuration reloaded from" in text:
                return refused
            if wanted is not None and any(line.startswith(wanted) for line in refused):
                return refused
            assert self.process.poll() is None, f"steward exited: {text}"
            time.sleep(0.05)
        raise AssertionError(f"after SIGHUP, no {wanted or 'reload'!r} in the log; refusals: {refused}")

    def running(self) -> tuple[int, list[str]]:
        """The web service's desired count and its running tasks' IDs."""
        (web,) = [s for s in self.get("/v1/services")["services"] if s["name"] == "web"]
        tasks = self.get("/v1/tasks?service=web")["tasks"]
        return web["desired"], sorted(t["task_id"] for t in tasks if t["state"] == "TASK_RUNNING")

    def settled(self, instances: int) -> list[str]:
        """Wait until web wants ``instances`` and runs exactly that many tasks; their IDs."""
        deadline = time.monotonic() + WAIT
        seen: Any = None
        while time.monotonic() < deadline:
            (web,) = [s for s in self.get("/v1/services")["services"] if s["name"] == "web"]
            tasks = self.get("/v1/tasks?service=web")["tasks"]
            seen = (web, [(t["task_id"], t["state"]) for t in tasks])
            if (
                web["desired"] == instances
                and web["running"] == instances
                and len(tasks) == instances
                and all(t["state"] == "TASK_RUNNING" for t in tasks)
            ):
                return sorted(t["task_id"] for t in tasks)
            time.sleep(0.1)
        raise AssertionError(f"web never settled at {instances}: {seen}")

    def restore(self, instances: int = 2) -> None:
        if self.site.is_dir():
            self.site.rmdir()
        self.site.write_text(valid_site(self.directory, instances))


@pytest.fixture(scope="module")
def steward(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Steward]:
    directory = tmp_path_factory.mktemp("hostile-reload")
    token = directory / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    site = directory / "site.yaml"
    site.write_text(valid_site(directory))
    log = directory / "steward.log"
    command = [sys.executable, "-m", "framework.cli", "run", "--config", str(site), "--log-file", str(log)]
    process = subprocess.Popen(command, cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        api = None
        deadline = time.monotonic() + WAIT
        while api is None and time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            if log.exists() and (
                found := re.search(r"operator API and /metrics at (http://\S+)", log.read_text())
            ):
                api = found.group(1)
            else:
                time.sleep(0.05)
        assert api is not None, log.read_text() if log.exists() else "no log"
        running = Steward(process, site, log, api, directory)
        running.settled(2)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()


# --- the broken files ---------------------------------------------------------------------------------


def replaced(old: str, new: str) -> Callable[[Steward], None]:
    def write(steward: Steward) -> None:
        text = valid_site(steward.directory)
        assert old in text
        steward.site.write_text(text.replace(old, new, 1))

    return write


def appended(extra: str) -> Callable[[Steward], None]:
    def write(steward: Steward) -> None:
        steward.site.write_text(valid_site(steward.directory) + extra)

    return write


def written(data: bytes) -> Callable[[Steward], None]:
    def write(steward: Steward) -> None:
        steward.site.write_bytes(data)

    return write


def truncated(steward: Steward) -> None:
    text = valid_site(steward.directory)
    steward.site.write_text(text[: text.index("resources:") + len("resources: {cpus")])


def removed(steward: Steward) -> None:
    steward.site.unlink()


def a_directory(steward: Steward) -> None:
    steward.site.unlink()
    steward.site.mkdir()


def billion_laughs() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for name, previous in zip("bcdefghi", "abcdefgh", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def not_utf8(steward: Steward) -> None:
    text = valid_site(steward.directory).replace("badinput-site", "caf\udce9-site")
    steward.site.write_bytes(text.encode("utf-8", "surrogateescape"))


# (how to break the file, the error expected; "{file}" stands for the site file's path)
CASES: dict[str, tuple[Callable[[Steward], None], str]] = {
    "malformed YAML": (
        replaced("roles: [site]", "roles: [site"),
        "{file}:4: invalid YAML: expected ',' or ']', but got ':' (while parsing a flow sequence on line 3)",
    ),
    "truncated file": (
        truncated,
        "{file}:13: invalid YAML: expected ',' or '}', but got '<stream end>' "
        "(while parsing a flow mapping on line 13)",
    ),
    "empty file": (
        written(b""),
        "{file}:1: the file is empty; expected a mapping with the sections 'framework' and 'services'",
    ),
    "binary file": (written(bytes(range(256)) * 4), "{file}:2: the file is not valid UTF-8"),
    "non-UTF-8 bytes": (not_utf8, "{file}:2: the file is not valid UTF-8"),
    "a list for a number": (
        replaced("instances: 2", "instances: [2]"),
        "{file}:11: services.web.instances: expected an integer or 'per_host', got a list",
    ),
    "a word for a number": (
        replaced("cpus: 0.5", "cpus: lots"),
        "{file}:13: services.web.resources.cpus: expected a number, got 'lots'",
    ),
    "1e400 cpus": (
        replaced("cpus: 0.5", "cpus: 1e400"),
        "{file}:13: services.web.resources.cpus: number too large: 1e400",
    ),
    "10**100 instances": (
        replaced("instances: 2", f"instances: {10**100}"),
        "{file}:11: services.web.instances: number too large: 10000000000000000000... (101 characters)",
    ),
    "negative instances": (
        replaced("instances: 2", "instances: -3"),
        "{file}:11: services.web.instances: must be >= 0, got -3",
    ),
    "negative memory": (
        replaced("mem: 64MiB", "mem: -1"),
        "{file}:13: services.web.resources.mem: must not be negative, got -1",
    ),
    "unknown top-level key": (
        appended("extras: {a: 1}\n"),
        "{file}:14: extras: unknown key; expected one of: framework, services",
    ),
    "unknown framework key": (
        replaced("  roles: [site]\n", "  roles: [site]\n  colour: blue\n"),
        "{file}:4: framework.colour: unknown key; expected one of: name, user, roles,",
    ),
    "unknown service key": (
        replaced("    instances: 2\n", "    instances: 2\n    replicas: 2\n"),
        "{file}:12: services.web.replicas: unknown key; expected one of: kind, role, container,",
    ),
    "unknown resources key": (
        replaced("mem: 64MiB}", "mem: 64MiB, gpus_please: 1}"),
        "{file}:13: services.web.resources.gpus_please: unknown key; expected one of: cpus, mem,",
    ),
    "duplicate key": (
        replaced("    instances: 2\n", "    instances: 2\n    instances: 3\n"),
        "{file}:12: services.web.instances: duplicate key 'instances' (first defined on line 11)",
    ),
    "YAML alias bomb": (
        appended(billion_laughs()),
        "{file}:14: anchors (&a) and aliases are not allowed; write the value out in full",
    ),
    "deep nesting": (
        appended("deep: " + "[" * 5000 + "]" * 5000 + "\n"),
        "{file}:14: nesting deeper than 32 levels is not allowed",
    ),
    "10 MB file": (appended("#" * (10 * 1024 * 1024) + "\n"), "{file}: document larger than 1024 KiB"),
    "file disappeared": (removed, "{file}: cannot read the file: No such file or directory"),
    "a directory": (a_directory, "{file}: cannot read the file: Is a directory"),
}


def assert_still_running(steward: Steward, tasks: list[str]) -> None:
    """The old configuration and the same tasks; and a valid (unchanged) file still applies."""
    assert steward.running() == (2, tasks)
    steward.restore()
    applied = steward.reload_by_api()
    assert applied.status_code == 200, applied.text
    assert applied.json()["applied"] is True
    assert steward.running() == (2, tasks)


@pytest.mark.parametrize("case", list(CASES))
def test_a_broken_file_is_refused_through_the_api_saying_where(steward: Steward, case: str) -> None:
    tasks = steward.settled(2)
    breaks, expected = CASES[case]
    breaks(steward)
    try:
        response = steward.reload_by_api()
    finally:
        steward.restore()
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["applied"] is False
    wanted = expected.replace("{file}", str(steward.site))
    assert any(error.startswith(wanted) for error in body["errors"]), (wanted, body["errors"])
    assert_still_running(steward, tasks)


@pytest.mark.parametrize("case", list(CASES))
def test_a_broken_file_is_refused_on_sighup_saying_where_in_the_log(steward: Steward, case: str) -> None:
    tasks = steward.settled(2)
    breaks, expected = CASES[case]
    breaks(steward)
    try:
        steward.reload_by_sighup(expected.replace("{file}", str(steward.site)))
    finally:
        steward.restore()
    assert_still_running(steward, tasks)


# --- random mutations of the valid file -----------------------------------------------------------------

WRONG_VALUES: dict[str, tuple[str, str, list[str]]] = {
    # leaf: (text in the valid file, field path, values that are never valid there)
    "instances": (
        "instances: 2",
        "services.web.instances",
        ["lots", "[2]", "{a: 1}", "-5", "1e400", "1.5", "true", str(10**30), ".nan", "''"],
    ),
    "cpus": (
        "cpus: 0.5",
        "services.web.resources.cpus",
        ["lots", "[1]", "{a: 1}", "-1", "0", "1e400", ".nan", "true", "''", "~"],
    ),
    "mem": (
        "mem: 64MiB",
        "services.web.resources.mem",
        ["lots", "[1]", "{a: 1}", "-1", "0", "1e400", "true", "64XB", "''", "~"],
    ),
    "agents": (
        "agents: 2",
        "framework.local_cluster.agents",
        ["lots", "0", "65", "-1", "[2]", "1.5", "true"],
    ),
}
LEAF_LINES = {"instances": 11, "cpus": 13, "mem": 13, "agents": 7}

# Where an unknown key can go: (how it is added, the path of the mapping it lands in)
KEY_PLACES = {
    "top level": ("at the end", ""),
    "framework": ("after framework:", "framework"),
    "services.web": ("after   web:", "services.web"),
    "container": ("into container:", "services.web.container"),
    "resources": ("into resources:", "services.web.resources"),
}

UNKNOWN_NAME = st.from_regex(r"zz_[a-z]{1,8}", fullmatch=True)


@st.composite
def broken_site(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    """Lines of a mutated valid site (the path is filled in later) and the errors it must raise, each
    as 'line: path: ' with the line the error must name."""
    lines = valid_site(Path("/STEWARD_DIR")).splitlines()
    tags: list[str | None] = [None] * len(lines)
    expected: list[tuple[str, str]] = []  # (tag of the line, "path: ")
    leaves = draw(st.lists(st.sampled_from(sorted(WRONG_VALUES)), unique=True, max_size=3))
    for leaf in leaves:
        text, path, values = WRONG_VALUES[leaf]
        index = LEAF_LINES[leaf] - 1
        assert text in lines[index]
        lines[index] = lines[index].replace(text, text.split(":")[0] + ": " + draw(st.sampled_from(values)))
        tag = f"leaf:{leaf}"
        tags[index] = tags[index] or tag
        expected.append((tags[index] or tag, f"{path}: "))
    places = draw(
        st.lists(st.sampled_from(sorted(KEY_PLACES)), unique=True, max_size=3, min_size=0 if leaves else 1)
    )
    for place in places:
        where, parent = KEY_PLACES[place]
        name = draw(UNKNOWN_NAME)
        path = f"{parent}.{name}" if parent else name
        tag = f"key:{place}"
        if where == "at the end":
            lines.append(f"{name}: 1")
            tags.append(tag)
        elif where.startswith("after "):
            anchor = lines.index(where.removeprefix("after "))  # earlier insertions may have moved it
            indent = "  " if place == "framework" else "    "
            lines.insert(anchor + 1, f"{indent}{name}: 1")
            tags.insert(anchor + 1, tag)
        else:  # into a flow mapping: before its closing brace
            key = where.removeprefix("into ")
            index = next(i for i, line in enumerate(lines) if line.strip().startswith(key))
            lines[index] = lines[index][:-1] + f", {name}: 1}}"
            tag = tags[index] or tag
            tags[index] = tag
        expected.append((tag, f"{path}: unknown key"))
    errors = [f"{tags.index(tag) + 1}: {what}" for tag, what in expected]
    return lines, errors


@settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken_site())
def test_random_wrong_values_and_unknown_keys_are_all_reported_and_change_nothing(
    steward: Steward, mutated: tuple[list[str], list[str]]
) -> None:
    lines, errors = mutated
    tasks = steward.running()[1]
    text = "\n".join(lines).replace("/STEWARD_DIR", str(steward.directory)) + "\n"
    steward.site.write_text(text)
    try:
        response = steward.reload_by_api()
    finally:
        steward.restore()
    assert response.status_code == 422, (text, response.text)
    reported = response.json()["errors"]
    for error in errors:
        wanted = f"{steward.site}:{error}"
        assert any(line.startswith(wanted) for line in reported), (wanted, reported, text)
    assert steward.running() == (2, tasks)


def test_after_all_that_a_valid_change_applies_and_the_old_tasks_stay(steward: Steward) -> None:
    before = steward.settled(2)
    steward.restore(instances=3)
    assert steward.reload_by_sighup(None) == []
    after = steward.settled(3)
    assert set(before) < set(after)
    steward.restore(instances=2)
    response = steward.reload_by_api()
    assert response.status_code == 200 and response.json()["applied"] is True, response.text
    assert len(steward.settled(2)) == 2
