"""Settings shared by every service, read from the environment (pydantic-settings)."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, EmailStr, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Keys that appear in examples and templates; a service must never run on one.
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "placeholder", "xxx"})


def _kafka(name: str) -> AliasChoices:
    # The broker is the one thing named without our prefix: it is the convention every Kafka
    # tool follows, and operators point it at any real Kafka.
    return AliasChoices(f"KAFKA_{name}", f"SAMENVEILIG_KAFKA_{name}")


class KafkaClientSettings(BaseSettings):
    """How every Kafka client of a process connects and who it is to the broker. Read apart from
    the service settings (shared/kafka/security.py) because every client takes them, the audit
    CLI too, which has no master key."""

    model_config = SettingsConfigDict(env_prefix="SAMENVEILIG_", extra="ignore")

    kafka_bootstrap_servers: str = Field(default="127.0.0.1:9092", validation_alias=_kafka("BOOTSTRAP_SERVERS"))
    # PLAINTEXT for the local broker; the deployment's Kafka: SASL_PLAINTEXT (inside its network)
    # or SASL_SSL, with SCRAM-SHA-512 and a principal per service (deploy/compose.yaml).
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = Field(
        default="PLAINTEXT", validation_alias=_kafka("SECURITY_PROTOCOL"))
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        default="SCRAM-SHA-512", validation_alias=_kafka("SASL_MECHANISM"))
    kafka_sasl_username: str = Field(default="", validation_alias=_kafka("SASL_USERNAME"))
    kafka_sasl_password: SecretStr = Field(default=SecretStr(""), validation_alias=_kafka("SASL_PASSWORD"))

    @model_validator(mode="after")
    def _sasl_needs_a_principal(self) -> KafkaClientSettings:
        if self.kafka_security_protocol.startswith("SASL"):
            if not self.kafka_sasl_username:
                raise ValueError("KAFKA_SASL_USERNAME is needed with a SASL security protocol")
            if self.kafka_sasl_password.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
                raise ValueError("KAFKA_SASL_PASSWORD is missing or a placeholder")
        return self

    def kafka_client_options(self) -> dict[str, Any]:
        """The keyword arguments every kafka-python client (producer, consumer, admin) takes."""
        options: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol.startswith("SASL"):
            options.update(sasl_mechanism=self.kafka_sasl_mechanism,
                           sasl_plain_username=self.kafka_sasl_username,
                           sasl_plain_password=self.kafka_sasl_password.get_secret_value())
        return options


class CommonSettings(KafkaClientSettings):
    model_config = SettingsConfigDict(env_prefix="SAMENVEILIG_", extra="ignore")

    # Prepended to every topic name; tests use it to isolate themselves on one broker.
    topic_prefix: str = ""
    topic_partitions: int = 3
    topic_replication: int = 1
    # Short, because Tansu joins a group in about half the session timeout (known defect 3).
    consumer_session_timeout_ms: int = 6000
    # How long a fetch may wait at the broker for data. Tansu on object storage spends this
    # budget listing every batch object of the partition from the first one, and answers empty
    # when the listing has not reached the position in time: with 50 ms a partition of ~1,500
    # batches stalls for good (the durable-log issue), 500 ms holds to ~15,000 when idle. Tansu
    # also answers only after about half of this (defect 5): a revocation takes ~250 ms to reach
    # a processor. Kafka answers at once. Tests on the in-memory broker use 50 (tests/conftest.py).
    consumer_fetch_max_wait_ms: int = 500
    # How long the Kafka door's raw messages (registry.mutations.v1, as the school system wrote
    # them: names and parents' addresses in clear) and their dead letters are kept: the topics'
    # retention.ms. An erasure waits this out; the purge report says when the last copy is gone.
    intake_retention_s: float = Field(default=7 * 24 * 3600, gt=0)
    # The broker does not enforce retention.ms (Tansu on object storage: the run command sets
    # this): the intake deletes its topic and dead letters itself (shared/kafka/sweep.py).
    intake_sweep: bool = False
    intake_sweep_interval_s: float = Field(default=60.0, gt=0)
    # Compacts the object store after a sweep, so deleted objects leave its volume files too
    # (SeaweedFS master `/vol/vacuum`); empty: none.
    broker_storage_vacuum_url: str = ""
    database_url: str = "sqlite:///.data/samenveilig.sqlite"
    keystore_url: str = "sqlite:///.data/keystore.sqlite"
    # Where the epoch keys that wrap the data keys live (a SQLite file, shared by every process of
    # the key store): required when the key store is on PostgreSQL, which keeps old row versions
    # of destroyed keys (shared/crypto.py EpochKeys; README, "Erasure"). Empty on SQLite.
    epoch_keys_url: str = ""
    # Wraps the per-subject data keys at rest; 32 random bytes, base64.
    master_key: SecretStr = SecretStr("")
    log_level: str = "INFO"
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # A request body longer than this is refused (413) before any of it is parsed; a mutation
    # batch of 500 pupils is about 400 KB.
    api_max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # The OpenID Connect provider whose access tokens the APIs accept (the auth service's public
    # URL; its JWKS is at /oauth2/jwks).
    oidc_issuer: str = "http://127.0.0.1:8002"
    # Where its signing keys are fetched, when not at the issuer's /oauth2/jwks (inside a
    # container network: the auth API's internal address).
    oidc_jwks_url: str = ""
    # The service's own client at the provider (client credentials), for the calls it makes to
    # other services' APIs (the access service's fail-closed reads of their /v1/outbox). Where
    # its token endpoint is, when not at the issuer's /oauth2/token (inside a container network).
    oidc_client_id: str = ""
    oidc_client_secret: SecretStr = SecretStr("")
    oidc_token_url: str = ""
    # Reverse proxies whose X-Forwarded-For is believed (addresses or networks, comma-separated);
    # empty: the TCP peer is the caller (shared/ratelimit.py).
    trusted_proxies: str = ""
    # Relays and processors serve /healthz and /metrics here when a port is given.
    health_port: int | None = None
    # A relay whose oldest due event waits longer than this is unhealthy (the broker refuses it).
    health_outbox_max_age_s: float = 60.0
    # The service's private event-signing key (`<service>.signing-key`); on the embedded default
    # every service's, in the data directory. A deployment mounts each service's own only.
    signing_dir: str = ".data/signing"
    # Where readers find the services' public keys (`<service>.<key id>.pub`) and the offsets
    # from which each topic is signed; empty: the signing directory.
    signing_public_dir: str = ""
    # Make missing signing keys (of every service) at start: the embedded default. A deployment
    # provisions the keys and sets this false, so a missing key stops the service instead.
    signing_create_keys: bool = True

    @field_validator("master_key")
    @classmethod
    def _refuse_placeholder_master_key(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        if raw.strip().lower() in PLACEHOLDER_SECRETS:
            raise ValueError(
                "SAMENVEILIG_MASTER_KEY is missing or a placeholder; generate one with "
                "`python -m shared.crypto new-key`"
            )
        try:
            decoded = base64.b64decode(raw, validate=True)
        except binascii.Error as error:
            raise ValueError("SAMENVEILIG_MASTER_KEY must be base64") from error
        if len(decoded) != 32:
            raise ValueError("SAMENVEILIG_MASTER_KEY must decode to 32 bytes")
        if len(set(decoded)) < 8:
            raise ValueError("SAMENVEILIG_MASTER_KEY looks like a placeholder (too few distinct bytes)")
        return value

    def intake_copies_gone_within_s(self) -> float:
        """After the last raw copy was written, how long until no copy is left on the broker:
        the retention, plus (local) a sweep round to notice, a quiet second, the object store's
        deletion queue and a round to vacuum, or (Kafka) the segment roll and the retention
        check (shared.contracts.topics.intake_topic_configs)."""
        from shared.contracts.topics import KAFKA_RETENTION_CHECK_S, QUIET_S, STORAGE_DELETION_S, intake_segment_s

        margin = (2 * self.intake_sweep_interval_s + QUIET_S + STORAGE_DELETION_S if self.intake_sweep
                  else intake_segment_s(self.intake_retention_s) + KAFKA_RETENTION_CHECK_S)
        return self.intake_retention_s + margin

    def master_key_bytes(self) -> bytes:
        return base64.b64decode(self.master_key.get_secret_value())

    def signing_paths(self) -> tuple[Path, Path]:
        """(private, public) directories of the event-signing keys."""
        return Path(self.signing_dir), Path(self.signing_public_dir or self.signing_dir)


class MailSettings(CommonSettings):
    """For services that send mail through an outbox and a relay: all of ours (`shared.kit`)."""

    # The consumer group of the service's processor (a second processor adds a suffix).
    consumer_group: str = "samenveilig"

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    mail_from: EmailStr = "kindkans@pporotterdam.nl"
    # How often the relay looks for due events and unsent mail.
    relay_interval_s: float = 0.05
