"""The files in monitoring/ read as Prometheus and Grafana read them: the alert rules, the
dashboard's panels, and the metric names a PromQL expression selects."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import yaml

from tests.support import ROOT

ALERTS = ROOT / "monitoring" / "alerts.yml"
DASHBOARD = ROOT / "monitoring" / "grafana-dashboard.json"


PROMQL_WORDS = frozenset(
    # aggregations, functions and keywords; function calls are also caught by the
    # following "(", this list covers the ones written with a space before it
    """
    sum min max avg group stddev stdvar count count_values bottomk topk quantile
    by without on ignoring group_left group_right bool and or unless offset start end
    abs absent absent_over_time avg_over_time ceil changes clamp clamp_max clamp_min
    count_over_time day_of_month day_of_week day_of_year days_in_month delta deriv exp
    floor histogram_quantile holt_winters hour idelta increase irate label_join
    label_replace last_over_time ln log10 log2 max_over_time min_over_time minute month
    predict_linear present_over_time quantile_over_time rate resets round scalar sgn sort
    sort_desc sqrt stddev_over_time stdvar_over_time sum_over_time time timestamp vector
    year inf nan le
    """.split()
)


_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')


_MATCHERS = re.compile(r"\{[^}]*\}")


_RANGE = re.compile(r"\[[^\]]*\]")


_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.I)


# Not after a word character or "$" (number exponents, durations, Grafana variables),
# and not a function name.
_IDENT = re.compile(r"(?<![\w:$])([A-Za-z_:][\w:]*)(?![\w:]|\s*\()")


def metric_names_in(expr: str) -> set[str]:
    """Metric names a PromQL expression selects."""
    # Strings first: they may hold braces ("/c/{slug}"); label names only live in
    # matchers and grouping clauses, which go next.
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    return {m for m in _IDENT.findall(text) if m.lower() not in PROMQL_WORDS}


def unexported_metrics(exprs: Iterable[str], exported: Iterable[str]) -> dict[str, set[str]]:
    """For each expression naming a metric not in ``exported``, those names."""
    known = set(exported)
    return {e: missing for e in exprs if (missing := metric_names_in(e) - known)}


def _alert_rules() -> list[dict]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _dashboard_panels() -> list[dict]:
    """Top-level panels in order, with a collapsed row's panels right after it."""
    out = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def _panel_exprs() -> list[str]:
    return [t["expr"] for p in _dashboard_panels() for t in p.get("targets", []) if "expr" in t]


def _queried_exprs() -> list[str]:
    exprs = _panel_exprs() + [rule["expr"] for rule in _alert_rules()]
    # An expression with no metric name found would pass the check below unseen.
    assert exprs and all(metric_names_in(e) for e in exprs), [e for e in exprs if not metric_names_in(e)]
    return exprs
