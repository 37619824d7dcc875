"""Topic names. Versioned, so an incompatible change gets a new topic instead of breaking readers."""

from __future__ import annotations

from enum import StrEnum


class Topic(StrEnum):
    # School systems publish raw mutations here; the registry validates them.
    REGISTRY_MUTATIONS = "registry.mutations.v1"
    # Canonical facts about branches, staff, pupils and dossiers. Key: the branch's stable id,
    # so one branch's events stay in order (a BRIN change does not change the key).
    REGISTRY_EVENTS = "registry.events.v1"
    # Grants, revocations, notification stops: key the staff member's id; views: the dossier's id.
    ACCESS_EVENTS = "access.events.v1"
    # Logins and sessions. Key: the staff member's id.
    AUTH_EVENTS = "auth.events.v1"
    # Consent, purges, subject requests, leaks. Key: the pupil's id (the leak's id for leaks).
    RETENTION_EVENTS = "retention.events.v1"


# The topics of canonical events (enveloped, each event once): what the audit reads and verifies.
EVENT_TOPICS = (Topic.REGISTRY_EVENTS, Topic.ACCESS_EVENTS, Topic.AUTH_EVENTS, Topic.RETENTION_EVENTS)

DLQ_SUFFIX = ".dlq"


def dead_letter_topic(topic: str) -> str:
    return f"{topic}{DLQ_SUFFIX}"


class TopicNames:
    """Physical topic names: the logical name behind an optional prefix (tests isolate by it)."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def __call__(self, topic: Topic | str) -> str:
        return f"{self.prefix}{topic}"

    def logical(self, physical: str) -> str:
        return physical.removeprefix(self.prefix)

    def all(self) -> list[str]:
        """Every topic the system uses, dead-letter topics included."""
        names = [self(topic) for topic in Topic]
        return names + [dead_letter_topic(name) for name in names]


# Kafka deletes a closed segment once its newest record is older than retention.ms, checking every
# log.retention.check.interval.ms (5 minutes by default); segment.ms closes the active one.
KAFKA_RETENTION_CHECK_S = 300.0
# Where the broker enforces no retention, the intake sweeps (shared/kafka/sweep.py): only after this
# long without a new record on the intake (a producer mid-batch)...
QUIET_S = 1.0
# ...and the object store takes up to this long to free a deleted object's chunks (SeaweedFS's
# filer deletion queue; measured: about a second).
STORAGE_DELETION_S = 10.0


def intake_segment_s(retention_s: float) -> float:
    return max(1.0, min(retention_s / 4, 3600.0))


def intake_topic_configs(topics: TopicNames, retention_s: float) -> dict[str, dict[str, str]]:
    """The raw intake and its dead letters hold what a school system wrote, personal data in
    clear: a bounded retention that an erasure waits out (README, "Erasure")."""
    settings = {"retention.ms": str(int(retention_s * 1000)),
                "segment.ms": str(int(intake_segment_s(retention_s) * 1000)), "cleanup.policy": "delete"}
    intake = topics(Topic.REGISTRY_MUTATIONS)
    return {intake: settings, dead_letter_topic(intake): settings}
