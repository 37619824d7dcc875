"""The request desk against a real database (SQLite and PostgreSQL), with the event log given
as decoded entries (no broker needed for these rules): a purge in the middle of an inspection
neither stalls the other exports nor leaves the pupil's texts behind."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from services.retention import store
from services.retention.requests import RequestDesk
from services.retention.service import RetentionService
from shared.clock import ManualClock
from shared.contracts import events as e
from shared.contracts.envelope import EventCodec, RecordedEvent
from shared.contracts.events import ConsentGiver, SubjectRequestKind, pupil_key_id
from shared.crypto import InMemoryKeyStore
from shared.db import make_engine
from shared.kafka.log import Entry, LogRecord

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


pytestmark = [pytest.mark.every_database]


def entry(event: e.Event, offset: int) -> Entry:
    recorded = RecordedEvent(id=str(uuid.uuid4()), type=event.event_type, source="/test", recorded_at=NOW,
                             effective_at=NOW - timedelta(days=30), correlation_id="c", causation_id=None,
                             key_id=None, event=event, erased=False)
    return Entry(LogRecord(str(event.topic), 0, offset, None, None, ()), recorded)


def test_a_purge_during_an_inspection_neither_stalls_exports_nor_keeps_texts(database_url):
    store.migrate_to_newest(database_url)
    engine = make_engine(database_url)
    keys, clock = InMemoryKeyStore(), ManualClock(NOW)
    service = RetentionService(EventCodec(keys, source="/test"), keys, clock)
    branch, leaving, staying = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    log = [entry(e.PupilEnrolled(branch_id=branch, pupil_id=pupil, name=name, date_of_birth=date(2015, 3, 1),
                                 parent_emails=[f"{name.lower()}@example.nl"]), n)
           for n, (pupil, name) in enumerate(((leaving, "Vera"), (staying, "Tim")))]
    reads = []
    desk = RequestDesk(service, lambda: reads.append(1) or log)
    with engine.begin() as connection:
        for pupil, left in ((leaving, date(2024, 7, 1)), (staying, date(2025, 12, 19))):
            connection.execute(insert(store.pupils).values(
                pupil_id=str(pupil), branch_id=str(branch), date_of_birth=date(2015, 3, 1), enrolled=False,
                left_on=left, has_swv_dossier=False, legal_hold=False, category="leerlingdossier",
                due_on=date(left.year + 2, left.month, left.day)))
        vera = desk.receive(connection, leaving, SubjectRequestKind.INSPECT, ConsentGiver.PARENT, None)
        refused = desk.receive(connection, leaving, SubjectRequestKind.CORRECT, ConsentGiver.PARENT, None)
        desk.answer(connection, uuid.UUID(refused["request_id"]), "refused",
                    refusal_reason="Vera's naam is juist gespeld volgens het paspoort.")
    keys.key_for_writing(pupil_key_id(leaving))
    # Vera's data is due: purged before her export was built (the outbox is published first).
    with engine.begin() as connection:
        connection.execute(store.outbox.update().values(published_at=NOW))
    assert service.purge_due(engine) == 1, "only Vera is due"
    with engine.begin() as connection:
        tim = desk.receive(connection, staying, SubjectRequestKind.INSPECT, ConsentGiver.PARENT, None)
        connection.execute(store.outbox.update().values(published_at=NOW))

    assert desk.prepare_exports(engine) == 1
    with engine.connect() as connection:
        assert desk.export(connection, uuid.UUID(tim["request_id"]))["details"]["name"] == "Tim"
        assert desk.export(connection, uuid.UUID(vera["request_id"])) is None
        texts = connection.execute(select(store.requests.c.refusal_reason).where(
            store.requests.c.pupil_id == str(leaving))).scalars().all()
        assert texts == [None, None], "the refusal text about Vera went with her data"
        assert desk.one(connection, uuid.UUID(vera["request_id"]))["status"] == "open", \
            "still to be answered: the officer tells the parents the data has been removed"
    before = len(reads)
    assert desk.prepare_exports(engine) == 0 and len(reads) == before, "nothing pending: no log read"
