"""Creating topics: services create their own source topics (Tansu does not auto-create them
with the partition count we want), and `python -m shared.kafka.admin` creates them all."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from shared.contracts.topics import TopicNames, intake_topic_configs
from shared.kafka.security import client_options
from shared.settings import CommonSettings

log = logging.getLogger(__name__)


def connect_admin(bootstrap: str, wait_seconds: float = 30.0) -> KafkaAdminClient:
    """An admin client, retrying while the broker is still starting."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="samenveilig-admin",
                                    request_timeout_ms=10_000, **client_options())
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def ensure_topics(bootstrap: str, names: Iterable[str], partitions: int, replication: int,
                  wait_seconds: float = 60.0, configs: Mapping[str, dict[str, str]] | None = None) -> list[str]:
    """Create the topics that do not exist yet; returns the ones created. A broker that goes
    away meanwhile (a restart under the run command's supervisor) is waited for: a service that
    exits at start because of it takes the whole run command down with it."""
    names = list(names)
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return _ensure_topics_once(bootstrap, names, partitions, replication, wait_seconds, configs or {})
        except KafkaError as error:
            if time.monotonic() > deadline:
                raise
            log.warning("the broker stopped answering while topics were checked; trying again",
                        extra={"reason": type(error).__name__})
            time.sleep(0.5)


def _ensure_topics_once(bootstrap: str, names: list[str], partitions: int, replication: int,
                        wait_seconds: float, configs: Mapping[str, dict[str, str]]) -> list[str]:
    admin = connect_admin(bootstrap, wait_seconds)
    try:
        existing = set(admin.list_topics())
        missing = [name for name in names if name not in existing]
        created: list[str] = []
        for name in missing:
            try:
                admin.create_topics([NewTopic(name, partitions, replication, topic_configs=configs.get(name, {}))])
                created.append(name)
            except TopicAlreadyExistsError:
                pass  # another service created it meanwhile
        for name in [name for name in names if name in existing and name in configs]:
            try:  # a topic made before its retention was bounded gets it now
                admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, configs=configs[name])])
            except KafkaError as error:
                log.warning("topic configuration not changed", extra={"topic": name, "reason": type(error).__name__})
        return created
    finally:
        admin.close()


def main() -> None:
    settings = CommonSettings()
    topics = TopicNames(settings.topic_prefix)
    try:
        created = ensure_topics(settings.kafka_bootstrap_servers, topics.all(),
                                settings.topic_partitions, settings.topic_replication,
                                configs=intake_topic_configs(topics, settings.intake_retention_s))
    except KafkaError as error:
        raise SystemExit(f"could not create topics: {type(error).__name__}") from error
    for name in created:
        log.info("topic created", extra={"topic": name})


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
