"""The compose deployment, read as data (compose cannot run here): the broker authenticates and
authorises every client, each service's principal writes only its own topic, each service holds
only its own signing key, and the APIs sit on an internal network behind one entry point."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from services.access.bootstrap import SERVICE as ACCESS
from services.auth.bootstrap import SERVICE as AUTH
from services.registry.bootstrap import SERVICE as REGISTRY
from services.retention.bootstrap import SERVICE as RETENTION
from shared.contracts.envelope import TOPIC_OWNERS
from shared.contracts.topics import dead_letter_topic

COMPOSE = yaml.safe_load((Path(__file__).resolve().parents[2] / "deploy" / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
DECLARED = {service.name: service for service in (ACCESS, AUTH, REGISTRY, RETENTION)}
# The long-running samenveilig processes: named `<service>-<process>`.
OURS = {name: name.split("-")[0] for name, spec in SERVICES.items()
        if spec.get("image") == "samenveilig:latest" and name.split("-")[0] in DECLARED}


def grants() -> dict[str, dict[str, set[str]]]:
    """principal -> operation -> topics, from the `grant` lines of the kafka-users script."""
    script = "\n".join(SERVICES["kafka-users"]["command"])
    out: dict[str, dict[str, set[str]]] = {}
    for principal, operation, topic in re.findall(r"^\s*grant (\S+) (\S+) (\S+)\s*$", script, re.MULTILINE):
        out.setdefault(principal, {}).setdefault(operation, set()).add(topic)
    return out


def test_every_service_process_is_declared_here():
    assert set(OURS.values()) == set(DECLARED)
    assert len(OURS) == 13


def test_only_the_proxy_and_the_mail_catchers_ui_are_published_and_on_loopback_only():
    published = {name for name, spec in SERVICES.items() if spec.get("ports")}
    assert published == {"proxy", "mailpit"}
    assert all(str(port).startswith("127.0.0.1:") for name in published for port in SERVICES[name]["ports"])


def test_the_apis_and_the_broker_are_on_an_internal_network_only():
    assert COMPOSE["networks"]["internal"]["internal"] is True
    for name in [*OURS, "kafka-1", "kafka-2", "kafka-3", "postgres"]:
        networks = SERVICES[name].get("networks")
        assert list(networks) == ["internal"], f"{name} is on {networks}"
    caddyfile = COMPOSE["configs"]["caddyfile"]["content"]
    for api in ("registry-api:8001", "access-api:8003", "retention-api:8004", "auth-api:8002"):
        assert api in caddyfile, f"the proxy does not reach {api}"


def test_every_listener_of_the_broker_demands_sasl_and_nothing_is_allowed_without_an_acl():
    kafka = COMPOSE["x-kafka-env"]
    protocols = dict(item.split(":") for item in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(protocols.values()) <= {"SASL_PLAINTEXT", "SASL_SSL"}, protocols
    assert "SCRAM-SHA-512" in kafka["KAFKA_SASL_ENABLED_MECHANISMS"]
    assert kafka["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
    assert kafka["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert kafka["KAFKA_SUPER_USERS"] == "User:admin"
    for broker in ("kafka-1", "kafka-2", "kafka-3"):
        assert SERVICES[broker]["environment"]["KAFKA_ADVERTISED_LISTENERS"].startswith("CLIENTS://")


@pytest.mark.parametrize("name", sorted(OURS))
def test_each_process_is_its_services_principal_and_holds_only_its_services_signing_key(name):
    service = OURS[name]
    environment = SERVICES[name]["environment"]
    assert environment["KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert environment["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert environment["KAFKA_SASL_USERNAME"] == service
    assert environment["KAFKA_SASL_PASSWORD"].startswith(f"${{KAFKA_{service.upper()}_PASSWORD:?")
    assert environment["SAMENVEILIG_SIGNING_CREATE_KEYS"] == "false"
    mounts = {volume.split(":")[0]: volume for volume in SERVICES[name]["volumes"]}
    # The epoch keys (shared/crypto.py EpochKeys) are shared by every process of the key store and
    # written by the rotation after a purge: the one writable mount.
    assert set(mounts) == {f"signing-{service}", "signing-public", "epoch-keys"}, mounts
    assert all(volume.endswith(":ro") for name, volume in mounts.items() if name != "epoch-keys")
    assert environment["SAMENVEILIG_EPOCH_KEYS_URL"].endswith("/epoch-keys/epoch-keys.sqlite")


@pytest.mark.parametrize("service", sorted(DECLARED))
def test_each_principal_writes_only_its_own_topic_and_the_dead_letters_of_what_it_reads(service):
    granted = grants()[service]
    own = {topic for topic, owner in TOPIC_OWNERS.items() if owner == service}
    follows = {str(topic) for processor in DECLARED[service].processors for topic in processor.follows}
    assert granted["Write"] == own | {dead_letter_topic(topic) for topic in follows}
    for topic in granted["Write"] - own:
        assert topic.endswith(".dlq"), f"{service} may write {topic}"
    assert follows <= granted["Read"], "it reads what it follows"


def test_nobody_but_the_owner_writes_a_services_topic():
    for principal, operations in grants().items():
        for topic in operations.get("Write", set()):
            owner = TOPIC_OWNERS.get(topic)
            assert owner in (None, principal), f"{principal} may write {owner}'s {topic}"
    assert grants()["schools"] == {"Write": {"registry.mutations.v1"}}, "school systems: their door only"
    assert "Write" not in grants()["audit"], "the audit reads and never writes"


def test_the_signing_keys_are_made_once_per_service_into_a_volume_of_its_own():
    script = "\n".join(SERVICES["signing-keys"]["command"])
    assert "new-signing-key" in script and "--rotate" not in script
    volumes = {volume.split(":")[0] for volume in SERVICES["signing-keys"]["volumes"]}
    assert volumes == {f"signing-{service}" for service in DECLARED} | {"signing-public"}
