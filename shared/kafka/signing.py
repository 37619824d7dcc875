"""Adopting a log written before events were signed: records, per topic of service events and
per partition, the offset from which every record must be signed (the high-water mark now).
Readers accept an unsigned record only below it; an unsigned record at or after it is forged.

    python -m shared.kafka.signing adopt [--public-dir DIR]

Run once, with the services stopped and their outboxes drained, before the first start of the
version that signs (README, "Who may write a topic"). A mark once recorded is never moved: moving
it on would make whatever was forged meanwhile look old.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

from shared.contracts.envelope import TOPIC_OWNERS
from shared.contracts.topics import TopicNames
from shared.crypto import SIGNED_FROM_FILE
from shared.kafka.security import client_options
from shared.settings import KafkaClientSettings


def high_water_marks(bootstrap: str, topics: TopicNames, names: list[str], timeout_s: float = 30.0
                     ) -> dict[str, dict[int, int]]:
    """Each partition's high-water mark, from fetch responses (ListOffsets is wrong on Tansu 0.6)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=1,
                             **client_options())
    try:
        assigned = [TopicPartition(topics(name), partition) for name in names
                    for partition in sorted(consumer.partitions_for_topic(topics(name)) or set())]
        marks: dict[str, dict[int, int]] = {name: {} for name in names}
        if not assigned:
            return marks
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        deadline = time.monotonic() + timeout_s
        while True:
            consumer.poll(timeout_ms=200)
            known = {tp: consumer.highwater(tp) for tp in assigned}
            if all(mark is not None for mark in known.values()):
                break
            if time.monotonic() > deadline:
                raise TimeoutError("the broker did not tell every partition's high-water mark in time")
        for tp, mark in known.items():
            marks[topics.logical(tp.topic)][tp.partition] = int(mark or 0)
        return marks
    finally:
        consumer.close()


def adopt(bootstrap: str, topics: TopicNames, public_dir: Path) -> dict[str, dict[int, int]]:
    """Records the marks of the topics that have none yet; returns every mark now recorded."""
    path = public_dir / SIGNED_FROM_FILE
    recorded: dict[str, dict[str, int]] = json.loads(path.read_text()) if path.exists() else {}
    missing = [name for name in TOPIC_OWNERS if name not in recorded]
    if missing:
        for name, marks in high_water_marks(bootstrap, topics, missing).items():
            recorded[name] = {str(partition): offset for partition, offset in sorted(marks.items())}
        public_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")
        os.replace(temporary, path)
    return {name: {int(p): o for p, o in marks.items()} for name, marks in recorded.items()}


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.kafka.signing")
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("adopt", help="record from which offsets each topic is signed")
    default_dir = os.environ.get("SAMENVEILIG_SIGNING_PUBLIC_DIR") or os.environ.get("SAMENVEILIG_SIGNING_DIR",
                                                                                   ".data/signing")
    command.add_argument("--public-dir", type=Path, default=Path(default_dir))
    args = parser.parse_args(argv)
    bootstrap = KafkaClientSettings().kafka_bootstrap_servers
    marks = adopt(bootstrap, TopicNames(os.environ.get("SAMENVEILIG_TOPIC_PREFIX", "")), args.public_dir)
    sys.stdout.write(json.dumps(marks, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
