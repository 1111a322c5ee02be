"""docker-compose.yml: valid by the Compose Specification, and everything it references exists.

No container engine is needed: the file is checked against the Compose Specification's JSON Schema
with check-jsonschema (which ships that schema), then read as data for what a schema cannot know:
files, secrets, volumes, variables, settings, ports, health checks and stop grace periods.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from tests.ops.deployment import (
    ROOT,
    check_connections_document,
    documented_setting,
    exists_after_setup,
    make_secrets_module,
    secret_env_variables,
    settings_from,
)

COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
#: Services running this project's image (the worker and the emulator).
OWN_SERVICES = {name for name, service in SERVICES.items() if "build" in service}
#: Services running worker processes (``hypatos-worker run``).
WORKER_SERVICES = {name for name in OWN_SERVICES if SERVICES[name].get("command") == ["run"]}
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[:?+-][^}]*)?\}")


def environment(service: dict[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in (service.get("environment") or {}).items()}


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of the service's bind mounts (sources starting with ./)."""
    mounts = []
    for volume in service.get("volumes") or []:
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            mounts.append((source, target))
    return mounts


def host_path(service: dict[str, Any], container_path: str) -> Path | None:
    """The repository file a container path of `service` comes from, through its bind mounts."""
    wanted = PurePosixPath(container_path)
    for source, target in bind_mounts(service):
        if wanted == PurePosixPath(target) or PurePosixPath(target) in wanted.parents:
            return Path(source.removeprefix("./")) / wanted.relative_to(target)
    return None


def test_the_compose_file_is_valid_by_the_compose_specification_schema() -> None:
    tool = Path(sys.executable).parent / "check-jsonschema"
    done = subprocess.run(
        [str(tool), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_there_are_a_worker_and_a_demo_worker() -> None:
    assert {"worker", "demo-worker"} == WORKER_SERVICES
    assert SERVICES["demo-worker"]["profiles"] == ["demo"]
    assert "profiles" not in SERVICES["worker"]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_bind_mounted_file_exists_in_the_repository_or_is_made_by_the_setup_step(name: str) -> None:
    missing = [source for source, _ in bind_mounts(SERVICES[name]) if not exists_after_setup(Path(source))]
    assert missing == []


def test_every_secret_file_exists_or_is_made_by_the_setup_step_and_every_used_secret_is_defined() -> None:
    defined = COMPOSE.get("secrets") or {}
    assert all(exists_after_setup(Path(secret["file"])) for secret in defined.values())
    used = {
        entry if isinstance(entry, str) else entry["source"]
        for service in SERVICES.values()
        for entry in service.get("secrets") or []
    }
    assert used <= set(defined)
    assert set(defined) <= used, "a secret nobody uses"


def test_every_named_volume_is_declared() -> None:
    declared = set(COMPOSE.get("volumes") or {})
    used = {
        volume.split(":")[0]
        for service in SERVICES.values()
        for volume in service.get("volumes") or []
        if not volume.startswith(("./", "/"))
    }
    assert used <= declared
    assert {"inbox", "outbox"} <= used


def test_every_interpolated_variable_is_one_the_setup_step_writes_to_the_env_file() -> None:
    variables = set(INTERPOLATION.findall(COMPOSE_FILE.read_text(encoding="utf-8")))
    assert variables, "passwords come from the .env file"
    assert variables <= set(make_secrets_module().PASSWORD_VARIABLES)


def test_every_credential_in_a_url_names_the_user_whose_password_it_interpolates() -> None:
    users = {variable: name for name, variable, _, _ in make_secrets_module().BROKER_USERS}
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    pairs = re.findall(r"//([^:/@]*):\$\{([A-Z_]+)[^}]*\}@", text)
    assert pairs
    for user, variable in pairs:
        expected = "" if variable == "REDIS_PASSWORD" else users.get(variable)
        assert user == expected, (user, variable)


@pytest.mark.parametrize("name", sorted(OWN_SERVICES))
def test_our_services_set_only_documented_settings_or_the_secrets_their_connections_file_names(
    name: str,
) -> None:
    service = SERVICES[name]
    env = environment(service)
    allowed: set[str] = set()
    if connections := env.get("HYPATOS_CONNECTIONS_FILE"):
        path = host_path(service, connections)
        assert path is not None and exists_after_setup(path), f"{connections} is not mounted"
        allowed = secret_env_variables(_connections_text(path))
    undocumented = sorted(key for key in env if not documented_setting(key) and key not in allowed)
    assert undocumented == []
    settings_from(env)  # every value is valid for its setting


def _connections_text(path: Path) -> str:
    """The file as a fresh clone has it after the setup step (which copies the example)."""
    module = make_secrets_module()
    if path == module.CONNECTIONS_FILE:
        path = module.CONNECTIONS_EXAMPLE
    return (ROOT / path).read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(WORKER_SERVICES))
def test_each_worker_loads_its_connections_file_with_the_secrets_and_variables_it_is_given(name: str) -> None:
    service = SERVICES[name]
    env = environment(service)
    secret_files = {
        f"/run/secrets/{entry if isinstance(entry, str) else entry.get('target', entry['source'])}"
        for entry in service.get("secrets") or []
    }
    path = host_path(service, env["HYPATOS_CONNECTIONS_FILE"])
    assert path is not None
    settings = settings_from(env)
    problems = check_connections_document(
        _connections_text(path),
        secret_files=secret_files,
        environment=env,
        allow_custom_endpoints=settings.allow_custom_endpoints,
    )
    assert problems == []


def test_the_production_worker_uses_redis_and_no_custom_endpoints() -> None:
    settings = settings_from(environment(SERVICES["worker"]))
    assert settings.redis_url and settings.redis_url.startswith("redis://:${REDIS_PASSWORD")
    assert settings.allow_custom_endpoints is False
    assert settings.inbox_dir and settings.outbox_dir


def test_the_demo_worker_uses_queues_and_redis_keys_of_its_own() -> None:
    production = settings_from(environment(SERVICES["worker"]))
    demo = settings_from(environment(SERVICES["demo-worker"]))
    for field in ("request_queue", "result_queue", "dead_letter_queue", "task_queue", "redis_prefix"):
        assert getattr(demo, field) != getattr(production, field), field


@pytest.mark.parametrize("name", sorted(WORKER_SERVICES))
def test_workers_probe_with_the_health_command_and_outlast_their_shutdown_timeout(name: str) -> None:
    service = SERVICES[name]
    assert service["healthcheck"]["test"][:3] == ["CMD", "hypatos-worker", "health"]
    grace_s = _seconds(service["stop_grace_period"])
    assert grace_s > settings_from(environment(service)).shutdown_timeout_s


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, duration
    return float(match[1]) * (60 if match[2] == "m" else 1)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_a_health_check(name: str) -> None:
    assert SERVICES[name].get("healthcheck", {}).get("test")


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_published_port_is_bound_to_the_loopback_interface(name: str) -> None:
    for port in SERVICES[name].get("ports") or []:
        assert str(port).startswith("127.0.0.1:"), port


def test_every_service_depended_on_exists_and_has_a_health_check_to_wait_for() -> None:
    for service in SERVICES.values():
        for needed, condition in (service.get("depends_on") or {}).items():
            assert needed in SERVICES
            assert condition == {"condition": "service_healthy"}


def test_rabbitmq_loads_the_topology_and_the_users_from_the_folder_its_configuration_names() -> None:
    rabbitmq = SERVICES["rabbitmq"]
    mounts = dict((target, source) for source, target in bind_mounts(rabbitmq))
    config_target = next(target for target, source in mounts.items() if source.endswith("rabbitmq.conf"))
    assert config_target.startswith("/etc/rabbitmq/conf.d/")
    config = (ROOT / mounts[config_target].removeprefix("./")).read_text(encoding="utf-8")
    folder = re.search(r"^load_definitions\s*=\s*(\S+)", config, re.MULTILINE)
    assert folder, "rabbitmq.conf must load the definitions"
    folder_path = PurePosixPath(folder[1])
    loaded = {source for target, source in mounts.items() if PurePosixPath(target).parent == folder_path}
    assert loaded == {"./ops/rabbitmq/definitions.json", f"./{make_secrets_module().ACCESS_FILE}"}
    assert "RABBITMQ_DEFAULT_USER" not in environment(rabbitmq)


def test_prometheus_scrapes_services_that_exist_and_loads_its_rules() -> None:
    prometheus = SERVICES["prometheus"]
    config_dir = host_path(prometheus, "/etc/prometheus")
    assert config_dir is not None
    config = yaml.safe_load((ROOT / config_dir / "prometheus.yml").read_text(encoding="utf-8"))
    hosts = set()
    for job in config["scrape_configs"]:
        for static in job.get("static_configs") or []:
            hosts |= {target.split(":")[0] for target in static["targets"]}
        for dns in job.get("dns_sd_configs") or []:
            hosts |= set(dns["names"])
    assert hosts - {"127.0.0.1"} <= set(SERVICES)
    assert all((ROOT / config_dir / rule_file).exists() for rule_file in config["rule_files"])
    worker_ports = {settings_from(environment(SERVICES[name])).metrics_port for name in WORKER_SERVICES}
    dns = [sd for job in config["scrape_configs"] for sd in job.get("dns_sd_configs") or []]
    assert worker_ports == {sd["port"] for sd in dns}
    assert {name for sd in dns for name in sd["names"]} == WORKER_SERVICES
