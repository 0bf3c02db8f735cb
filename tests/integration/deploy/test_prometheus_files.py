"""The Prometheus and Grafana files under deploy/ are what the programs that read them accept.

``promtool`` (Debian's ``prometheus`` package) checks the alert rules and the scrape config and
runs the rules' unit tests on synthetic series (deploy/prometheus/steward-alerts.test.yml); the
blackbox exporter checks its module file. The Grafana dashboard is checked for the structure
Grafana needs (schema version, unique panel ids, grid positions inside the 24 columns, a target
per query with a unique refId, every template variable it uses defined). What the queries *mean*
is checked against a real Prometheus in test_live_prometheus.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.deploy.support import (
    ALERT_TESTS,
    ALERTS,
    BLACKBOX,
    SCRAPE,
    alert_rules,
    binary,
    dashboard_panels,
    dashboard_queries,
    load_dashboard,
    metric_names,
)


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_promtool_accepts_the_alert_rules() -> None:
    result = run(binary("promtool"), "check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_promtool_refuses_a_broken_copy_of_the_rules(tmp_path: Path) -> None:
    """The check above can fail: one unbalanced parenthesis is an error promtool reports."""
    broken = tmp_path / "broken.yml"
    broken.write_text(ALERTS.read_text().replace("sum(steward_leader", "sum((steward_leader", 1))
    result = run(binary("promtool"), "check", "rules", str(broken))
    assert result.returncode != 0
    assert "parse error" in result.stdout + result.stderr


def test_promtool_accepts_the_scrape_config() -> None:
    # check config also loads the rule_files the config names (steward-alerts.yml next to it).
    result = run(binary("promtool"), "check", "config", str(SCRAPE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid prometheus config file syntax" in result.stdout


def test_the_alert_unit_tests_pass_and_cover_at_least_three_alerts_firing() -> None:
    result = run(binary("promtool"), "test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    document = yaml.safe_load(ALERT_TESTS.read_text())
    firing = {
        check["alertname"]
        for test in document["tests"]
        for check in test["alert_rule_test"]
        if check["exp_alerts"]
    }
    assert len(firing) >= 3, firing
    assert firing <= {rule["alert"] for rule in alert_rules()}


def test_a_wrong_expectation_fails_the_alert_unit_tests(tmp_path: Path) -> None:
    """promtool really compares: the same tests with one expected severity changed fail."""
    shutil.copy(ALERTS, tmp_path / ALERTS.name)
    text = ALERT_TESTS.read_text()
    changed = text.replace("severity: critical", "severity: info", 1)
    assert changed != text
    (tmp_path / ALERT_TESTS.name).write_text(changed)
    result = run(binary("promtool"), "test", "rules", str(tmp_path / ALERT_TESTS.name))
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


def test_every_alert_has_a_duration_a_severity_and_annotations() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "alert names must be unique"
    for rule in rules:
        assert "for" in rule, rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip(), rule["alert"]
    # The situations the operators asked for, each covered by at least one rule.
    assert {
        "StewardNoLeader",
        "StewardDisconnectedFromMaster",
        "StewardServiceBelowDesired",
        "StewardDemandWaitingWithoutOffers",
        "StewardServiceFlapping",
        "StewardAutoscalerFlapping",
        "StewardCircuitBreakerOpen",
        "StewardExecutorMetricsMissing",
    } <= set(names)


def test_the_blackbox_exporter_accepts_its_module_file() -> None:
    result = run(binary("prometheus-blackbox-exporter"), f"--config.file={BLACKBOX}", "--config.check")
    assert result.returncode == 0, result.stdout + result.stderr
    modules = yaml.safe_load(BLACKBOX.read_text())["modules"]
    scrape = yaml.safe_load(SCRAPE.read_text())
    (squids,) = [job for job in scrape["scrape_configs"] if job["job_name"] == "steward-squids"]
    assert squids["params"]["module"][0] in modules


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    dashboard = load_dashboard()
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] and dashboard["title"]
    assert dashboard["time"] == {"from": "now-6h", "to": "now"}
    panels = dashboard_panels(dashboard)
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    used: set[str] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert all(isinstance(grid[key], int) for key in ("x", "y", "w", "h")), panel["title"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            if "repeat" in panel:
                used.add(panel["repeat"])
            continue
        assert panel["type"] in {"timeseries", "stat"}, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            used.update(re.findall(r"\$(\w+)", target["expr"]))
        used.update(re.findall(r"\$(\w+)", panel["title"]))
    for variable in variables.values():
        used.update(re.findall(r"\$(\w+)", variable.get("definition", "")))
    undefined = {name for name in used if not name.startswith("__")} - set(variables)
    assert not undefined, f"template variables used but not defined: {undefined}"


def test_one_row_repeats_per_service_after_the_health_row() -> None:
    dashboard = load_dashboard()
    rows = [panel for panel in dashboard["panels"] if panel["type"] == "row"]
    assert [row.get("repeat") for row in rows] == [None, "service"]
    service = {variable["name"]: variable for variable in dashboard["templating"]["list"]}["service"]
    assert service["multi"] and service["includeAll"], "a repeated row needs a multi-value variable"
    # Load, target, desired/running and decisions are in the repeated row.
    start = dashboard["panels"].index(rows[1])
    queries = " ".join(t["expr"] for p in dashboard["panels"][start + 1 :] for t in p.get("targets", []))
    for name in (
        "steward_autoscale_load",
        "steward_autoscale_target_instances",
        "steward_service_desired_instances",
        "steward_service_running_instances",
        "steward_autoscale_decisions_total",
    ):
        assert name in queries, name


def test_metric_names_reads_names_not_labels_or_functions() -> None:
    """The helper the live test uses to tie every query to real metrics."""
    expr = (
        'sum by (service) (rate(steward_launches_total{job=~"steward", direction="up"}[5m])) '
        "and on (instance, job) (steward_leader == 1) or absent(up{job='x'}) / 2^30"
    )
    assert metric_names(expr) == {"steward_launches_total", "steward_leader", "up"}
    every = " ".join(query.expr for query in dashboard_queries(load_dashboard()))
    assert "steward_autoscale_load" in metric_names(every)


@pytest.mark.parametrize("path", [ALERTS, ALERT_TESTS, SCRAPE, BLACKBOX], ids=lambda p: p.name)
def test_the_prometheus_yaml_files_parse_as_plain_yaml(path: Path) -> None:
    assert isinstance(yaml.safe_load(path.read_text()), dict)
