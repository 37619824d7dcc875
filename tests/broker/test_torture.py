"""The broker torture (tests/broker/torture.py) as tests: 20 idempotent acks=all producers on a
3-partition topic while the local broker on its default storage (SeaweedFS) is SIGKILLed and
started again every 6 s, and SeaweedFS itself once (no kill in the last 20 s); then every
property of the log, one test each. One run per session (SAMENVEILIG_TORTURE_SECONDS of
producing, 45 by default, about 65 s in all); its summary is written to the fixture's temporary
directory as torture.json.

Also: the same workload without kills against the session broker when it is an external or
container Kafka (KAFKA_BOOTSTRAP_SERVERS), and a 5 s run on s3rver, which must fail (strict
xfail: it pins why s3rver was replaced). The full s3rver run with kills is a script:
`python -m tests.broker.torture --storage s3rver` (exits 1).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from deploy.localbroker import S3RVER, LocalBroker
from shared.settings import CommonSettings
from tests.broker.torture import DEFAULT_SECONDS, SECONDS_ENV, TortureConfig, TortureSummary, run_torture

SECONDS = float(os.environ.get(SECONDS_ENV, DEFAULT_SECONDS))
# The fetch wait the processors run with (shared/settings.py), and two for comparison.
CONFIGURED_FETCH_WAIT_MS = int(os.environ.get(
    "SAMENVEILIG_CONSUMER_FETCH_MAX_WAIT_MS", CommonSettings.model_fields["consumer_fetch_max_wait_ms"].default))
TAIL_WAITS_MS = tuple(sorted({50, 500, CONFIGURED_FETCH_WAIT_MS}))

pytestmark = [pytest.mark.broker]


@pytest.fixture(scope="module")
def torture(broker, tmp_path_factory) -> TortureSummary:
    """One torture run against a fresh SeaweedFS-backed Tansu, with the kills."""
    if broker.kind != "tansu":
        pytest.skip(f"kills the local Tansu broker; the session broker is {broker.kind}")
    data_dir = tmp_path_factory.mktemp("torture")
    local = LocalBroker(storage="seaweedfs", data_dir=data_dir, log_dir=data_dir / "logs").start()
    try:
        summary = run_torture(local.bootstrap, TortureConfig.from_env(tail_fetch_waits_ms=TAIL_WAITS_MS, replay_s=0),
                              local=local)
    finally:
        local.stop()
    (data_dir / "torture.json").write_text(summary.to_json())
    return summary


def _first(summary: TortureSummary, name: str) -> dict[int, Any]:
    """Per partition, the first few findings of one kind (for the assertion messages)."""
    return {p["partition"]: p.get(f"{name}_first") for p in summary.partitions if p.get(name)}


class TestTheLocalDefaultUnderKills:
    """One run (the module's `torture` fixture, set up by the first test: its timeout covers it)."""

    pytestmark = [pytest.mark.tansu_only, pytest.mark.timeout(int(SECONDS) + 180)]

    def test_the_broker_was_killed_and_the_storage_restarted(self, torture):
        kinds = [event["kind"] for event in torture.chaos]
        assert kinds.count("broker-kill") >= 2, f"Tansu was SIGKILLed only {kinds.count('broker-kill')} times"
        assert kinds.count("storage-restart") == 1, f"chaos steps: {kinds}"
        failed = [event for event in torture.chaos if event["error"]]
        assert not failed, f"restarts failed: {failed}"


    def test_every_producer_made_progress_after_the_last_restart(self, torture):
        assert not torture.producers_crashed, f"producer threads crashed: {torture.producers_crashed}"
        assert torture.producers_acked_after_last_event == torture.config["producers"], (
            f"only {torture.producers_acked_after_last_event} of {torture.config['producers']} producers had a "
            f"send acknowledged after the last restart: {torture.producers_idle_after_last_event}")


    def test_every_acknowledged_message_is_on_the_log(self, torture):
        assert torture.totals["lost"] == 0, (
            f"{torture.totals['lost']} of {torture.acknowledged} acknowledged messages lost: {_first(torture, 'lost')}")


    def test_every_acknowledged_offset_holds_its_message(self, torture):
        assert torture.totals["misplaced"] == 0, f"offsets holding another send: {_first(torture, 'misplaced')}"
        assert torture.totals["offsets_reused"] == 0, (
            f"offsets acknowledged to two sends: {_first(torture, 'offsets_reused')}")


    def test_no_send_is_on_the_log_twice(self, torture):
        """A send is key:seq:attempt. The broker never writes one twice (idempotence); a second copy
        of a message comes only from another attempt, after an answer at offset -1 or an error."""
        assert torture.totals["sends_written_twice"] == 0, (
            f"sends written twice: {_first(torture, 'sends_written_twice')}")


    def test_acknowledged_messages_are_in_order_per_key(self, torture):
        assert not torture.keys_on_several_partitions, (
            f"keys acknowledged on several partitions: {torture.keys_on_several_partitions}")
        assert torture.totals["out_of_order"] == 0, f"out of order: {_first(torture, 'out_of_order')}"


    def test_every_partition_reads_to_its_high_water_mark(self, torture):
        assert torture.read["complete"], f"the log could not be read to its high-water marks: {torture.read}"
        assert not any(torture.read["log_start"].values()), f"log start offsets moved: {torture.read}"
        assert torture.totals["beyond_high_water"] == 0, f"beyond: {_first(torture, 'beyond_high_water')}"
        assert torture.totals["unparseable"] == 0, f"foreign records: {_first(torture, 'unparseable')}"
        for p in torture.partitions:
            assert p["high_water"] == p["records"] + p["holes"], (
                f"partition {p['partition']}: high-water {p['high_water']}, {p['records']} records, {p['holes']} holes")


    def test_offsets_are_continuous_but_for_offsets_unacknowledged_sends_took(self, torture):
        """Tansu's own: a kill after it took an offset (watermark) and before it wrote the batch
        leaves a hole, and the send is answered -1 or fails. At most one hole per such send."""
        for p in torture.partitions:
            assert p["unexplained_holes"] == 0, (
                f"partition {p['partition']}: {p['holes']} holes {p.get('holes_first')}, but only "
                f"{p['unacknowledged_sends']} unacknowledged sends, {p['unacknowledged_present']} of them on the log")


    @pytest.mark.xfail(strict=False, reason="Tansu 0.6: a kill mid-produce leaves holes below the high-water mark, "
                       "and an attempt answered -1 may be on the log after all (README, 'What remains Tansu's own'); "
                       "whether a run shows either depends on where the kills land")
    def test_strictly_once_and_continuous(self, torture):
        """The issue's wording, without the tolerance: every acknowledged message exactly once,
        high-water mark equal to the record count. Reported, not required (kill timing decides)."""
        assert torture.tansu_defects() == []


    def test_a_consumer_with_the_configured_fetch_wait_follows_every_restart(self, torture):
        tail = next(t for t in torture.tails if t["fetch_max_wait_ms"] == CONFIGURED_FETCH_WAIT_MS)
        assert tail["caught_up"], (
            f"a consumer with fetch_max_wait_ms={CONFIGURED_FETCH_WAIT_MS} did not reach the high-water marks "
            f"within {torture.config['tail_catch_up_s']} s of the read: {tail}; all tails: {torture.tails}")
        assert None not in tail["resume_after_event_s"], f"no record after a restart: {tail}"


@pytest.mark.timeout(120)
def test_the_session_broker_keeps_every_acknowledged_message(broker):
    """The same workload, without kills, against an external or container Kafka (the deployment's
    broker: KAFKA_BOOTSTRAP_SERVERS). Strict: a real Kafka has none of Tansu's defects."""
    if broker.kind == "tansu":
        pytest.skip("the session broker is the in-memory Tansu; the SeaweedFS torture covers Tansu")
    summary = run_torture(broker.bootstrap, TortureConfig(duration_s=min(SECONDS, 15.0), replay_s=0))
    assert summary.acknowledged > 0, f"nothing acknowledged: {summary.errors}"
    assert summary.failures() == [], summary.to_json()
    assert summary.tansu_defects() == [], summary.to_json()


@pytest.mark.tansu_only
@pytest.mark.timeout(90)
@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="s3rver ignores If-Match/If-None-Match and rewrites objects in place: Tansu's "
                   "watermark and meta.json updates are lost under concurrent produce, offsets are reused "
                   "and acknowledged messages overwritten, even without a kill")
def test_s3rver_loses_acknowledged_messages(broker, tmp_path):
    """Pins why s3rver was replaced: 5 s of the workload, no kills. The full run with kills:
    `python -m tests.broker.torture --storage s3rver`."""
    if broker.kind != "tansu":
        pytest.skip(f"exercises the local Tansu broker; the session broker is {broker.kind}")
    if not S3RVER.exists():
        pytest.skip(f"{S3RVER} missing (npm ci --prefix deploy)")
    local = LocalBroker(storage="s3rver", data_dir=tmp_path, log_dir=tmp_path / "logs").start()
    try:
        summary = run_torture(local.bootstrap, TortureConfig(
            duration_s=5.0, request_timeout_ms=2_000, delivery_timeout_ms=5_000, read_timeout_s=20.0,
            read_stall_s=3.0, tail_fetch_waits_ms=(), replay_s=0))
    finally:
        local.stop()
    if summary.acknowledged == 0:  # not the failure pinned here (pytest.fail is no AssertionError)
        pytest.fail(f"nothing acknowledged on s3rver: {summary.errors}")
    print(summary.to_json())
    assert summary.failures() == [], f"{summary.failures()} (of {summary.acknowledged} acknowledged)"
