"""A processor that sits still while records wait below the high-water mark is noticed (issue
12: a consumer once stuck at a hole Tansu left, for good and in silence)."""

from __future__ import annotations

from shared.kafka.consumer import StallWatch

KEY = ("registry.events.v1", 0)


def test_a_partition_behind_and_not_moving_counts_as_stalled_from_when_it_last_moved():
    watch = StallWatch()
    watch.observe(KEY, position=10, behind=5, at=100.0)
    watch.observe(KEY, position=10, behind=5, at=130.0)
    watch.observe(KEY, position=10, behind=7, at=170.0)  # more arrived, still not read further
    assert watch.stalled(at=175.0) == {KEY: (7, 75.0)}


def test_reading_on_resets_the_clock():
    watch = StallWatch()
    watch.observe(KEY, position=10, behind=5, at=100.0)
    watch.observe(KEY, position=12, behind=3, at=160.0)
    assert watch.stalled(at=161.0) == {KEY: (3, 1.0)}


def test_a_caught_up_partition_is_never_stalled_however_long_it_is_quiet():
    watch = StallWatch()
    watch.observe(KEY, position=10, behind=0, at=100.0)
    watch.observe(KEY, position=10, behind=0, at=10_000.0)
    assert watch.stalled(at=20_000.0) == {}
    # The first record after a quiet spell starts a fresh clock, not one from the quiet spell.
    watch.observe(KEY, position=10, behind=1, at=20_000.0)
    assert watch.stalled(at=20_001.0) == {KEY: (1, 1.0)}


def test_partitions_are_watched_apart():
    watch = StallWatch()
    other = ("registry.events.v1", 1)
    watch.observe(KEY, position=4, behind=2, at=0.0)
    watch.observe(other, position=4, behind=2, at=0.0)
    watch.observe(other, position=6, behind=0, at=50.0)
    assert watch.stalled(at=60.0) == {KEY: (2, 60.0)}
