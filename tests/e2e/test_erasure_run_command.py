"""Issue 16, item 1, as a user runs it: a pupil reported through each door (HTTP, and Kafka with
one invalid mutation that goes to the dead letters with the pupil's name in it), erased by the
retention purge, and once the documented waiting period has passed, the raw bytes of every file
of the data directory (databases and their WAL and journal files, the broker's storage, the key
store, mail) and the run's log hold neither the pupils' names nor their parents' addresses."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import signal
from datetime import UTC, datetime

import pytest
from kafka import KafkaProducer

from shared.contracts.topics import Topic
from tests.e2e.test_run_command import ADDRESS, RunCommand, _kill_processes_of
from tests.support import read_all, wait_until

# Short, so that the test waits seconds; the default is 7 days (shared/settings.py).
RETENTION_S = 10
SWEEP_INTERVAL_S = 1
HTTP_PUPIL = ("Sanne Bakker", "ouder.bakker@example.nl")
KAFKA_PUPIL = ("Daan Kafkadeur", "ouder.kafkadeur@example.nl")
# Left long ago: the purge of every category is due at once (the retention with a short period).
LEFT_ON = "2019-07-19"


class ErasureRun(RunCommand):
    def env(self) -> dict[str, str]:
        env = super().env()
        env["SAMENVEILIG_INTAKE_RETENTION_S"] = str(RETENTION_S)
        env["SAMENVEILIG_INTAKE_SWEEP_INTERVAL_S"] = str(SWEEP_INTERVAL_S)
        return env


@pytest.fixture
def run(tmp_path):
    command = ErasureRun(tmp_path / "data")
    yield command
    if command.process and command.process.poll() is None:
        import os

        os.killpg(command.process.pid, signal.SIGKILL)
    _kill_processes_of(command.data_dir)


def _publish(run: RunCommand, credential: dict, mutation: dict) -> None:
    value = json.dumps(mutation).encode()
    signature = "sha256=" + hmac.new(base64.b64decode(credential["signing_key"]), value, hashlib.sha256).hexdigest()
    producer = KafkaProducer(bootstrap_servers=run.bootstrap, acks="all")
    try:
        producer.send(Topic.REGISTRY_MUTATIONS.value, key=credential["client_id"].encode(), value=value,
                      headers=[("samenveilig-client", credential["client_id"].encode()),
                               ("samenveilig-signature", signature.encode())]).get(timeout=10)
    finally:
        producer.close()


def _readable(run: RunCommand, needles: list[bytes]) -> list[str]:
    """Every file of the data directory, and the run's log, searched byte for byte."""
    files = [path for path in sorted(run.data_dir.rglob("*")) if path.is_file()] + [run.output]
    found = []
    for path in files:
        try:
            content = path.read_bytes()
        except OSError:
            continue  # gone while we looked (a WAL truncated, a volume compacted)
        where = path.relative_to(run.data_dir.parent)
        found += [f"{where}: {needle.decode()}" for needle in needles if needle in content]
    return found


def test_nothing_readable_is_left_of_an_erased_pupil_in_any_file_once_the_intake_retention_has_passed(run):
    run.start()
    school = run.create_credential("ParnasSys OBS De Regenboog", "12AB")
    status, body = run.report(school["api_key"], {"mutations": [
        {"kind": "branch", "change": "founded", "mutation_id": "er-1", "vestigingscode": "12AB00",
         "name": "OBS De Regenboog", "address": ADDRESS, "phone": "010-1234567", "wijknetwerk": "Noord"},
        {"kind": "pupil_enrolled", "mutation_id": "er-2", "vestigingscode": "12AB00", "pupil_ref": "lln-1",
         "name": HTTP_PUPIL[0], "date_of_birth": "2011-03-01", "parent_emails": [HTTP_PUPIL[1]]}]})
    assert status == 202, body
    # The Kafka door: the pupil, an invalid mutation naming them (a date of birth that does not
    # exist: a dead letter with the whole message in it), and both pupils' leaving.
    enrolled = {"kind": "pupil_enrolled", "mutation_id": "er-3", "vestigingscode": "12AB00", "pupil_ref": "lln-2",
                "name": KAFKA_PUPIL[0], "date_of_birth": "2011-04-02", "parent_emails": [KAFKA_PUPIL[1]]}
    _publish(run, school, enrolled)
    _publish(run, school, {**enrolled, "mutation_id": "er-4", "date_of_birth": "2011-13-45"})
    wait_until(lambda: any(KAFKA_PUPIL[0].encode() in (r.value or b"")
                           for r in read_all(run.bootstrap, f"{Topic.REGISTRY_MUTATIONS.value}.dlq")),
               timeout_s=60, message="the invalid mutation in the dead letters")
    needles = [part.encode() for pupil in (HTTP_PUPIL, KAFKA_PUPIL) for part in pupil]
    assert _readable(run, needles), "the scan finds the pupils while they are kept"
    for number, ref in ((5, "lln-1"), (6, "lln-2")):
        _publish(run, school, {"kind": "pupil_left", "mutation_id": f"er-{number}", "vestigingscode": "12AB00",
                               "pupil_ref": ref, "left_on": LEFT_ON})

    purges = wait_until(lambda: len(report := run.call("RETENTION_API_PORT", "/v1/purges")[1]) == 2 and report,
                        timeout_s=90, message="both pupils purged")

    # The documented period: the raw intake and its dead letters go once they are older than the
    # retention; every database was scrubbed after its purge; the key store overwritten.
    wait_until(lambda: not _readable(run, needles), timeout_s=RETENTION_S + 60, interval_s=0.5,
               message=f"nothing readable left: {_readable(run, needles)}")
    clean_at = datetime.now(UTC)
    purged_at = max(datetime.fromisoformat(p["purged_at"]) for p in purges)
    gone_by = max(datetime.fromisoformat(p["last_copy_gone_by"]) for p in purges)
    print(f"nothing readable {(clean_at - purged_at).total_seconds():.1f} s after the last purge; "
          f"the report promised {(gone_by - purged_at).total_seconds():.1f} s")
    assert clean_at <= gone_by, "the purge report's promise is kept"
    assert (gone_by - purged_at).total_seconds() >= RETENTION_S
    assert all("registry.mutations.v1" in p["remains_until_then"] for p in purges)

    # And the system goes on: the intake reads the new topic (a new pupil through the Kafka door).
    _publish(run, school, {"kind": "pupil_enrolled", "mutation_id": "er-7", "vestigingscode": "12AB00",
                           "pupil_ref": "lln-3", "name": "Noor Nieuw", "date_of_birth": "2012-05-05",
                           "parent_emails": ["ouder.nieuw@example.nl"]})

    def pupils_enrolled() -> int:
        return sum(1 for r in read_all(run.bootstrap, Topic.REGISTRY_EVENTS.value)
                   if json.loads(r.value or b"{}").get("type") == "PupilEnrolled")

    wait_until(lambda: pupils_enrolled() == 3, timeout_s=60, message="the third pupil through the swept intake")
    assert run.ctrl_c() in (0, 130, -signal.SIGINT)
    assert "Traceback" not in run.output.read_text()
    assert not _readable(run, needles)

