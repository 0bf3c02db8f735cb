"""What the deployment-file tests share: where the files are, and the PromQL they hold.

The Grafana dashboard's queries carry Grafana's template variables (``$job``, ``$service``,
``$__rate_interval``); :func:`concrete` replaces them the way Grafana would for one service, so
that Prometheus can run them. :func:`metric_names` finds the metric names an expression reads, so
the tests can check that every one is a metric Steward (or the blackbox exporter, or Prometheus's
own ``up``) really exports.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "steward-alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "steward-alerts.test.yml"
SCRAPE = PROMETHEUS_DIR / "steward-scrape.yml"
BLACKBOX = PROMETHEUS_DIR / "blackbox-steward.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "steward-dashboard.json"


def binary(name: str) -> str:
    """The path of a program from Debian's prometheus packages; fails the test when it is missing."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} is missing: make test installs Debian's prometheus and prometheus-blackbox-exporter "
            "packages (TEST_DEBS), or: apt-get install prometheus prometheus-blackbox-exporter",
            pytrace=False,
        )
    return found


@dataclass(frozen=True)
class Query:
    """One PromQL expression and where it comes from (for failure messages)."""

    origin: str
    expr: str


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def load_dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def dashboard_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows and the panels of collapsed rows included."""
    return list(_panels(dashboard["panels"]))


def dashboard_queries(dashboard: dict[str, Any]) -> list[Query]:
    """Every panel target's expression, and the series selector of every ``label_values`` variable."""
    found: list[Query] = []
    for panel in dashboard_panels(dashboard):
        for target in panel.get("targets", []):
            found.append(Query(f"panel {panel['title']!r} target {target['refId']}", target["expr"]))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["definition"])
        assert match, f"variable {variable['name']}: expected label_values(selector, label)"
        found.append(Query(f"variable {variable['name']}", match.group(1)))
    return found


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def rule_queries() -> list[Query]:
    return [Query(f"alert {rule['alert']}", rule["expr"]) for rule in alert_rules()]


def concrete(expr: str, *, service: str, job: str = "steward", rate_interval: str = "1m") -> str:
    """``expr`` as Grafana sends it for one service of a repeated row."""
    replaced = expr.replace("$__rate_interval", rate_interval).replace("$__interval", "15s")
    replaced = replaced.replace("$job", re.escape(job)).replace("$service", re.escape(service))
    assert "$" not in replaced, f"an unknown template variable is left in {replaced!r}"
    return replaced


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_BRACES = re.compile(r"\{[^}]*\}")
_NAME = re.compile(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b")
_KEYWORDS = """
    sum min max avg count stddev stdvar topk bottomk quantile count_values group
    by without on ignoring group_left group_right and or unless bool offset
    rate irate increase delta idelta deriv absent absent_over_time histogram_quantile time
    vector scalar clamp_min clamp_max abs ceil floor round sort sort_desc label_replace label_join
    count_over_time max_over_time min_over_time avg_over_time sum_over_time changes resets
    humanize humanizeDuration inf nan
"""
_NOT_METRICS = frozenset(_KEYWORDS.split())


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects: identifiers outside strings and label matchers that are
    neither PromQL functions nor keywords, nor the label names of ``by (...)``/``on (...)``."""
    text = _STRING.sub('""', expr)
    text = _BRACES.sub("{}", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", text)
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery durations
    names = {name for name in _NAME.findall(text) if name not in _NOT_METRICS}
    return {name for name in names if not re.fullmatch(r"\d+\w*", name)}
