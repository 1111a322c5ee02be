"""The Kubernetes manifests (ops/k8s): valid by their schemas, and everything they reference exists.

Built-in kinds are checked by kubernetes-validate (the Kubernetes OpenAPI schemas, strict: unknown
fields are errors); KEDA's kinds by KEDA's models generated from its CRDs (cloudcoil), where a field
the model does not know is an error too.  No cluster is needed.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.keda import v1alpha1 as keda

from tests.ops.deployment import (
    ROOT,
    check_connections_document,
    documented_setting,
    secret_env_variables,
    settings_from,
)
from worker.tools.health import CHECK_NAMES

K8S = ROOT / "ops" / "k8s"
MANIFEST_FILES = sorted(K8S.glob("*.yaml"))
EXAMPLE_FILES = sorted((K8S / "examples").glob("*.yaml"))
KUBERNETES_VERSION = "1.29.0"


def _load(paths: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    return [
        (path, document)
        for path in paths
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if document
    ]


DOCUMENTS = _load(MANIFEST_FILES)
EXAMPLES = _load(EXAMPLE_FILES)


def find(kind: str, name: str, documents: list[tuple[Path, dict[str, Any]]] = DOCUMENTS) -> dict[str, Any]:
    found = [d for _, d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name} is not defined exactly once"
    return found[0]


DEPLOYMENT = find("Deployment", "hypatos-worker")
POD = DEPLOYMENT["spec"]["template"]["spec"]
CONTAINER = POD["containers"][0]
SETTINGS_MAP = find("ConfigMap", "hypatos-worker-settings")["data"]
SETTINGS = settings_from(SETTINGS_MAP)


def _ids(documents: list[tuple[Path, dict[str, Any]]]) -> list[str]:
    return [f"{path.name}:{doc['kind']}/{doc['metadata']['name']}" for path, doc in documents]


@pytest.mark.parametrize(("path", "document"), DOCUMENTS + EXAMPLES, ids=_ids(DOCUMENTS + EXAMPLES))
def test_every_manifest_is_valid_by_its_schema(path: Path, document: dict[str, Any]) -> None:
    if document["apiVersion"].startswith("keda.sh/"):
        model = getattr(keda, document["kind"])
        parsed = model.model_validate(document)
        # The models ignore unknown fields: a field that does not survive the round trip is unknown.
        assert parsed.model_dump(by_alias=True, exclude_unset=True, mode="json") == document
    else:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_manifests_hold_no_secret_only_the_examples_do() -> None:
    assert not [d for _, d in DOCUMENTS if d["kind"] == "Secret"]
    assert {d["kind"] for _, d in EXAMPLES} == {"Secret"}


def test_every_config_map_secret_and_volume_claim_the_deployment_uses_is_defined() -> None:
    for source in CONTAINER["envFrom"]:
        if "configMapRef" in source:
            find("ConfigMap", source["configMapRef"]["name"])
        else:
            find("Secret", source["secretRef"]["name"], EXAMPLES)
    for volume in POD["volumes"]:
        if "configMap" in volume:
            find("ConfigMap", volume["configMap"]["name"])
        elif "secret" in volume:
            find("Secret", volume["secret"]["secretName"], EXAMPLES)
        elif "persistentVolumeClaim" in volume:
            find("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    mounted = {mount["name"] for mount in CONTAINER["volumeMounts"]}
    assert mounted == {volume["name"] for volume in POD["volumes"]}


def test_every_variable_given_to_the_worker_is_a_documented_setting_with_a_valid_value() -> None:
    secret_env = find("Secret", "hypatos-worker-env", EXAMPLES)["stringData"]
    variables = {**SETTINGS_MAP, **secret_env}
    assert sorted(key for key in variables if not documented_setting(key)) == []
    settings_from(variables)


def test_the_stop_grace_period_is_longer_than_the_shutdown_timeout() -> None:
    assert POD["terminationGracePeriodSeconds"] > SETTINGS.shutdown_timeout_s


def test_the_probes_run_the_health_command_with_known_checks() -> None:
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = CONTAINER[probe]["exec"]["command"]
        assert command[:2] == ["hypatos-worker", "health"], probe
        arguments = command[2:]
        checks = [arguments[i + 1] for i, arg in enumerate(arguments) if arg == "--check"]
        assert set(checks) <= set(CHECK_NAMES), probe
        assert CONTAINER[probe]["timeoutSeconds"] >= 10, probe
    liveness = CONTAINER["livenessProbe"]["exec"]["command"]
    assert [word for word in liveness if word in CHECK_NAMES] == ["workers"], "only the pod's own worker"


def test_the_connections_file_loads_with_the_mounted_client_secrets() -> None:
    mounts = {mount["name"]: mount["mountPath"] for mount in CONTAINER["volumeMounts"]}
    connections_volume = next(v for v in POD["volumes"] if "configMap" in v and v["name"] == "connections")
    connections_map = find("ConfigMap", connections_volume["configMap"]["name"])["data"]
    connections_path = PurePosixPath(str(SETTINGS.connections_file))
    assert connections_path.parent == PurePosixPath(mounts["connections"])
    text = connections_map[connections_path.name]
    secrets_volume = next(v for v in POD["volumes"] if "secret" in v)
    secret = find("Secret", secrets_volume["secret"]["secretName"], EXAMPLES)
    secret_files = {str(PurePosixPath(mounts[secrets_volume["name"]]) / key) for key in secret["stringData"]}
    assert not secret_env_variables(text)
    problems = check_connections_document(
        text,
        secret_files=secret_files,
        environment={},
        allow_custom_endpoints=SETTINGS.allow_custom_endpoints,
    )
    assert problems == []


def test_inbox_outbox_and_metrics_port_match_the_settings() -> None:
    mounts = {mount["mountPath"] for mount in CONTAINER["volumeMounts"]}
    assert {str(SETTINGS.inbox_dir), str(SETTINGS.outbox_dir)} <= mounts
    annotations = DEPLOYMENT["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == SETTINGS.metrics_port
    assert [p["containerPort"] for p in CONTAINER["ports"]] == [SETTINGS.metrics_port]


def test_keda_scales_the_deployment_by_the_depth_of_the_request_queue() -> None:
    scaled = find("ScaledObject", "hypatos-worker")
    assert scaled["spec"]["scaleTargetRef"]["name"] == DEPLOYMENT["metadata"]["name"]
    triggers = scaled["spec"]["triggers"]
    assert {t["type"] for t in triggers} == {"rabbitmq"}
    assert {t["metadata"]["queueName"] for t in triggers} == {SETTINGS.request_queue}
    for trigger in triggers:
        auth = find("TriggerAuthentication", trigger["authenticationRef"]["name"])
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["key"] in find("Secret", ref["name"], EXAMPLES)["stringData"]
