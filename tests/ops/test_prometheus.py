"""The Prometheus configuration and alert rules (ops/prometheus), checked and unit-tested with promtool.

promtool comes with Prometheus (Debian's ``prometheus`` package; ``.ci/run`` installs it).  Each
alert gets series that must fire it and series that must not, evaluated by ``promtool test rules``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.metrics import MetricWrapperBase

from tests.ops.deployment import ROOT
from tests.support.ci import unavailable
from worker import metrics

PROMETHEUS_DIR = ROOT / "ops" / "prometheus"
ALERTS_FILE = PROMETHEUS_DIR / "alerts.yml"
RULES = [rule for group in yaml.safe_load(ALERTS_FILE.read_text())["groups"] for rule in group["rules"]]

#: Metrics announced for the worker that `worker.metrics` does not export yet; the alert rules use them.
ANNOUNCED_WORKER_METRICS = {
    "hypatos_api_responses_total",
}
#: Series of RabbitMQ's Prometheus plugin (per-object metrics on) and Prometheus' own the rules read.
OTHER_METRICS = {"rabbitmq_queue_consumers", "rabbitmq_queue_messages", "rabbitmq_queue_messages_ready", "up"}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        unavailable("promtool is not installed (Debian: `apt-get install prometheus`; .ci/run installs it)")
    return found


def run_promtool(*args: str) -> None:
    done = subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_prometheus_configuration_and_its_rule_files_are_valid() -> None:
    run_promtool("check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))


def test_the_alert_rules_are_valid() -> None:
    run_promtool("check", "rules", str(ALERTS_FILE))


def _exported_worker_metrics() -> set[str]:
    names = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            names |= {family.name for family in value.describe()}
    # Counters are described without the _total suffix of their samples.
    return names | {f"{name}_total" for name in names}


def test_the_rules_read_only_metrics_someone_exports() -> None:
    known = _exported_worker_metrics() | ANNOUNCED_WORKER_METRICS | OTHER_METRICS
    pattern = re.compile(r"\b((?:hypatos|rabbitmq)_[a-z_]+|up)\b")
    used = {name for rule in RULES for name in pattern.findall(rule["expr"])}
    assert used - known == set()


# --- behaviour: promtool unit tests, one case per alert that must fire and one that must not ------

LABELS = re.compile(r"\{\{\s*\$labels\.([a-z_]+)\s*\}\}")


def _expected(alert: str, labels: dict[str, str]) -> dict[str, Any]:
    """The alert as promtool reports it: the rule's labels plus `labels`, annotations rendered."""
    rule = next(rule for rule in RULES if rule["alert"] == alert)
    annotations = {
        key: LABELS.sub(lambda match: labels.get(match[1], ""), value)
        for key, value in rule.get("annotations", {}).items()
    }
    return {"exp_labels": {**rule.get("labels", {}), **labels}, "exp_annotations": annotations}


REQUESTS = 'vhost="/",queue="hypatos.requests"'
#: (alert, input series, evaluation time, labels of the alert expected then; None: must not fire).
CASES: list[tuple[str, list[tuple[str, str]], str, dict[str, str] | None]] = [
    (
        "HypatosRequestQueueWithoutConsumers",
        [(f"rabbitmq_queue_consumers{{{REQUESTS}}}", "0x10")],
        "5m",
        {"vhost": "/", "queue": "hypatos.requests"},
    ),
    (
        "HypatosRequestQueueWithoutConsumers",
        [
            (f"rabbitmq_queue_consumers{{{REQUESTS}}}", "2x10"),
            ('rabbitmq_queue_consumers{vhost="/",queue="other"}', "0x10"),
        ],
        "5m",
        None,
    ),
    ("HypatosNoWorkerConsuming", [('hypatos_consumer_up{instance="w1:9100"}', "0x10")], "5m", {}),
    ("HypatosNoWorkerConsuming", [('hypatos_consumer_up{instance="w1:9100"}', "1x10")], "5m", None),
    (
        "HypatosDeadLettersRising",
        [('hypatos_dead_lettered_total{instance="w1:9100",reason="undecodable"}', "0 0 0 1 2 2 2 2 2 2")],
        "6m",
        {},
    ),
    (
        "HypatosDeadLettersRising",
        [('rabbitmq_queue_messages{vhost="/",queue="hypatos.dead"}', "0 0 0 3 3 3")],
        "5m",
        {"vhost": "/", "queue": "hypatos.dead"},
    ),
    (
        "HypatosDeadLettersRising",
        [('hypatos_dead_lettered_total{instance="w1:9100",reason="undecodable"}', "4x20")],
        "10m",
        None,
    ),
    (
        "HypatosAuthFailed",
        [
            (
                'hypatos_requests_total{operation="companiesList",status="failed",error_code="auth_failed"}',
                "0 0 1 1 1 1",
            )
        ],
        "5m",
        {},
    ),
    (
        "HypatosAuthFailed",
        [('hypatos_token_requests_total{connection="acme",outcome="refused"}', "0 0 0 2 2")],
        "4m",
        {"connection": "acme"},
    ),
    (
        "HypatosAuthFailed",
        [('hypatos_token_requests_total{connection="acme",outcome="ok"}', "0+1x10")],
        "9m",
        None,
    ),
    (
        "HypatosRateLimited",
        [
            ('hypatos_api_responses_total{connection="acme",status_class="429"}', "0+10x30"),
            ('hypatos_api_responses_total{connection="acme",status_class="2xx"}', "0+90x30"),
        ],
        "20m",
        {"connection": "acme"},
    ),
    (
        "HypatosRateLimited",
        [
            ('hypatos_api_responses_total{connection="acme",status_class="429"}', "0+1x30"),
            ('hypatos_api_responses_total{connection="acme",status_class="2xx"}', "0+99x30"),
        ],
        "20m",
        None,
    ),
    (
        "HypatosQueueBacklog",
        [(f"rabbitmq_queue_messages_ready{{{REQUESTS}}}", "1500x20")],
        "15m",
        {"vhost": "/", "queue": "hypatos.requests"},
    ),
    ("HypatosQueueBacklog", [(f"rabbitmq_queue_messages_ready{{{REQUESTS}}}", "500x20")], "15m", None),
    (
        "HypatosResultsUnroutable",
        [('hypatos_results_unroutable_total{instance="w1:9100"}', "0 0 1 1")],
        "3m",
        {},
    ),
    (
        "HypatosResultsUnroutable",
        [('hypatos_results_unroutable_total{instance="w1:9100"}', "1x10")],
        "9m",
        None,
    ),
    (
        "HypatosWorkerDown",
        [('up{job="hypatos-worker",instance="w1:9100"}', "0x10")],
        "6m",
        {"job": "hypatos-worker", "instance": "w1:9100"},
    ),
    ("HypatosWorkerDown", [('up{job="hypatos-worker",instance="w1:9100"}', "1x10")], "6m", None),
]


def test_every_alert_has_a_case_that_fires_it_and_one_that_does_not() -> None:
    firing = {alert for alert, _, _, labels in CASES if labels is not None}
    quiet = {alert for alert, _, _, labels in CASES if labels is None}
    assert firing == quiet == {rule["alert"] for rule in RULES}


def test_each_alert_fires_on_its_condition_and_not_without_it(tmp_path: Path) -> None:
    tests = [
        {
            "interval": "1m",
            "input_series": [{"series": series, "values": values} for series, values in inputs],
            "alert_rule_test": [
                {
                    "eval_time": at,
                    "alertname": alert,
                    "exp_alerts": [] if labels is None else [_expected(alert, labels)],
                }
            ],
        }
        for alert, inputs, at, labels in CASES
    ]
    test_file = tmp_path / "alerts.test.yml"
    test_file.write_text(yaml.safe_dump({"rule_files": [str(ALERTS_FILE)], "tests": tests}, sort_keys=False))
    run_promtool("test", "rules", str(test_file))
