"""The compose stack's broker set-up, run on a private RabbitMQ node: users, permissions, definitions.

The node gets the repository's rabbitmq.conf and enabled_plugins, and a definitions folder holding
ops/rabbitmq/definitions.json and the access file made by ops/docker/make_secrets.py, as
docker-compose.yml mounts them; only listener ports and paths differ.  The machine's shared broker is
never touched.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import stat
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pytest

from tests.ops.deployment import ROOT, make_secrets_module
from tests.support.amqp import pika_parameters
from tests.support.ci import unavailable
from tests.support.metrics import free_port
from tests.support.rabbit_node import RabbitNode, rabbitmq_scripts
from worker.settings import WorkerSettings
from worker.tools.health import run_health

TOPOLOGY = json.loads((ROOT / "ops" / "rabbitmq" / "definitions.json").read_text(encoding="utf-8"))
REQUEST_EXCHANGE = "hypatos.requests"


@pytest.fixture(scope="module")
def setup_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of what a fresh clone has, after the documented setup step."""
    root = tmp_path_factory.mktemp("clone")
    (root / "ops" / "config").mkdir(parents=True)
    for example in (ROOT / "ops" / "config").glob("*.example.toml"):
        (root / "ops" / "config" / example.name).write_bytes(example.read_bytes())
    make_secrets_module().make_secrets(root)
    return root


def env_values(root: Path) -> dict[str, str]:
    return make_secrets_module().read_env(root / ".env")[1]


@pytest.fixture(scope="module")
def node(setup_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A private node configured like the compose service; yields its ports and the passwords."""
    if rabbitmq_scripts() is None:
        unavailable("rabbitmq-server is not installed (.ci/run installs it)")
    base = tmp_path_factory.mktemp("rabbit")
    rabbit = RabbitNode(base)
    definitions = base / "definitions.d"
    definitions.mkdir()
    access = (setup_root / make_secrets_module().ACCESS_FILE).read_bytes()
    (definitions / "10-access.json").write_bytes(access)
    (definitions / "20-topology.json").write_text(json.dumps(TOPOLOGY))
    management_port, prometheus_port = free_port(), free_port()
    overrides = {
        "load_definitions": str(definitions),
        "listeners.tcp.default": f"127.0.0.1:{rabbit.port}",
        "management.tcp.ip": "127.0.0.1",
        "management.tcp.port": str(management_port),
        "prometheus.tcp.ip": "127.0.0.1",
        "prometheus.tcp.port": str(prometheus_port),
        "log.console": "false",
    }
    config = []
    for line in (ROOT / "ops" / "rabbitmq" / "rabbitmq.conf").read_text(encoding="utf-8").splitlines():
        key = line.split("=", 1)[0].strip()
        if key not in overrides:
            config.append(line)
    config += [f"{key} = {value}" for key, value in overrides.items()]
    (base / "rabbitmq.conf").write_text("\n".join(config) + "\n")
    (base / "enabled_plugins").write_bytes((ROOT / "ops" / "rabbitmq" / "enabled_plugins").read_bytes())
    rabbit.start_timeout_s = 180
    rabbit.start()
    try:
        yield {
            "port": rabbit.port,
            "management": management_port,
            "prometheus": prometheus_port,
            "passwords": env_values(setup_root),
        }
    finally:
        rabbit.stop()


def url(node: dict[str, Any], user: str, variable: str) -> str:
    return f"amqp://{user}:{node['passwords'][variable]}@127.0.0.1:{node['port']}//"


def connect(node: dict[str, Any], user: str, variable: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika_parameters(url(node, user, variable)))


def management_get(node: dict[str, Any], path: str, user: str, variable: str) -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{node['management']}/api{path}")
    token = base64.b64encode(f"{user}:{node['passwords'][variable]}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


# --- the setup step ----------------------------------------------------------------------------


def test_the_setup_step_makes_every_password_and_keeps_them_when_run_again(setup_root: Path) -> None:
    module = make_secrets_module()
    first = env_values(setup_root)
    assert set(first) == set(module.PASSWORD_VARIABLES)
    assert len(set(first.values())) == len(first)
    module.make_secrets(setup_root)
    assert env_values(setup_root) == first
    assert stat.S_IMODE((setup_root / ".env").stat().st_mode) == 0o600
    assert stat.S_IMODE((setup_root / "ops" / "secrets").stat().st_mode) == 0o700
    assert (setup_root / module.CONNECTIONS_FILE).read_text() == (
        ROOT / module.CONNECTIONS_EXAMPLE
    ).read_text()


def test_the_access_file_holds_password_hashes_that_match_and_never_a_password(setup_root: Path) -> None:
    module = make_secrets_module()
    text = (setup_root / module.ACCESS_FILE).read_text()
    passwords = env_values(setup_root)
    assert not any(password in text for password in passwords.values())
    for user in json.loads(text)["users"]:
        variable = next(v for name, v, _, _ in module.BROKER_USERS if name == user["name"])
        raw = base64.b64decode(user["password_hash"])
        salt, digest = raw[:4], raw[4:]
        assert hashlib.sha256(salt + passwords[variable].encode()).digest() == digest


def test_the_redis_configuration_requires_the_password_of_the_env_file(setup_root: Path) -> None:
    conf = (setup_root / make_secrets_module().REDIS_CONF).read_text()
    match = re.fullmatch(r"requirepass (\S+)\n", conf)
    assert match is not None
    assert match[1] == env_values(setup_root)["REDIS_PASSWORD"]


# --- the broker configured with it -------------------------------------------------------------


@pytest.mark.integration
def test_there_is_no_guest_user(node: dict[str, Any]) -> None:
    guest = pika.PlainCredentials("guest", "guest")
    parameters = pika.ConnectionParameters("127.0.0.1", node["port"], credentials=guest)
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(parameters)


@pytest.mark.integration
def test_the_worker_user_finds_the_queues_loaded_from_the_definitions_as_health_expects(
    node: dict[str, Any],
) -> None:
    broker_url = url(node, "hypatos-worker", "RABBITMQ_WORKER_PASSWORD")
    settings = WorkerSettings(_env_file=None, broker_url=broker_url)  # type: ignore[call-arg]
    report = run_health(settings, only=["request_queue"], timeout_s=10)
    assert [(c.name, c.status) for c in report.checks] == [("broker", "ok"), ("request_queue", "ok")], report


@pytest.mark.integration
def test_the_producer_may_publish_only_to_the_request_exchange(node: dict[str, Any]) -> None:
    # The request exchange bound to the request queue; declared here when the definitions lack it.
    if not any(exchange["name"] == REQUEST_EXCHANGE for exchange in TOPOLOGY["exchanges"]):
        admin = connect(node, "hypatos-admin", "RABBITMQ_ADMIN_PASSWORD")
        channel = admin.channel()
        channel.exchange_declare(REQUEST_EXCHANGE, exchange_type="direct", durable=True)
        channel.queue_bind("hypatos.requests", REQUEST_EXCHANGE, routing_key="hypatos.requests")
        admin.close()
    producer = connect(node, "hypatos-producer", "RABBITMQ_PRODUCER_PASSWORD")
    try:
        channel = producer.channel()
        channel.confirm_delivery()
        channel.basic_publish(REQUEST_EXCHANGE, "hypatos.requests", b'{"id": "r1"}', mandatory=True)
        refused = producer.channel()
        refused.confirm_delivery()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="ACCESS_REFUSED"):
            refused.basic_publish("", "hypatos.tasks", b"{}")  # the default exchange reaches any queue
        with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="ACCESS_REFUSED"):
            producer.channel().queue_declare("hypatos.tasks", passive=False, durable=True)
        reply = producer.channel()
        reply.queue_declare("hypatos.reply.test", exclusive=True, auto_delete=True)  # its own reply queue
        reply.basic_get("hypatos.results", auto_ack=False)  # reads results
    finally:
        producer.close()
    admin = connect(node, "hypatos-admin", "RABBITMQ_ADMIN_PASSWORD")
    try:
        method, _, body = admin.channel().basic_get("hypatos.requests", auto_ack=True)
        assert method is not None and body == b'{"id": "r1"}'
    finally:
        admin.close()


@pytest.mark.integration
def test_the_monitoring_user_reads_queue_state_but_cannot_use_amqp_queues(node: dict[str, Any]) -> None:
    monitor = ("hypatos-monitor", "RABBITMQ_MONITOR_PASSWORD")
    queue = management_get(node, "/queues/%2F/hypatos.requests", *monitor)
    assert queue["arguments"]["x-queue-type"] == "quorum"
    with pytest.raises(urllib.error.HTTPError):
        management_get(node, "/users", *monitor)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="ACCESS_REFUSED"):
        connect(node, *monitor).channel().basic_get("hypatos.requests")
    users = management_get(node, "/users", "hypatos-admin", "RABBITMQ_ADMIN_PASSWORD")
    assert {user["name"] for user in users} == {name for name, _, _, _ in make_secrets_module().BROKER_USERS}


@pytest.mark.integration
def test_the_prometheus_endpoint_serves_per_queue_depth_and_consumers(node: dict[str, Any]) -> None:
    wanted = (
        'rabbitmq_queue_messages_ready{vhost="/",queue="hypatos.requests"}',
        'rabbitmq_queue_consumers{vhost="/",queue="hypatos.requests"}',
    )
    deadline = time.monotonic() + 60  # queue statistics are emitted every few seconds
    text = ""
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{node['prometheus']}/metrics", timeout=10) as response:
            text = response.read().decode()
        if all(series in text for series in wanted):
            return
        time.sleep(2)
    pytest.fail(f"missing per-queue series; got {len(text)} characters of metrics")
