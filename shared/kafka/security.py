"""Who a process is to the broker: the security options every Kafka client of the process takes
(the local broker: PLAINTEXT; the deployment's Kafka: SASL/SCRAM, a principal per service).

Read once from the environment (`KafkaClientSettings`), not passed along: every client takes the
same identity, and the bootstrap string's many paths (relay, processors, confirmer, log reader,
admin) would each need the credentials beside it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from shared.settings import KafkaClientSettings


@lru_cache(maxsize=1)
def client_options() -> dict[str, Any]:
    return KafkaClientSettings().kafka_client_options()
