"""Data-subject request deadlines, who may ask, lawful early deletion, the 72-hour clock, and
who a leak affects (pure: the log is built in memory, folded with the access service's rules)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.retention.domain import (
    add_months,
    answer_due,
    leak_clock,
    may_ask,
    may_delete_early,
    regulator_deadline,
    report_problem,
)
from services.retention.history import build_index, inspection, leak_scope, parents_to_tell
from services.retention.letters import LEAK_NOTICES, answer_letter, inspection_page, leak_notice
from shared.contracts import events as e
from shared.contracts.envelope import RecordedEvent
from shared.contracts.events import ConsentGiver
from shared.kafka.log import Entry, LogRecord

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
PARENT, PUPIL = ConsentGiver.PARENT, ConsentGiver.PUPIL


# --- one month to answer -----------------------------------------------------------------------

@pytest.mark.parametrize(("received", "due"), [
    (date(2026, 11, 25), date(2026, 12, 25)),
    (date(2026, 12, 15), date(2027, 1, 15)),     # over the year's end
    (date(2027, 1, 31), date(2027, 2, 28)),      # February lacks the 31st: its last day
    (date(2028, 1, 31), date(2028, 2, 29)),      # ...in a leap year the 29th
    (date(2026, 3, 31), date(2026, 4, 30)),
])
def test_a_request_is_due_one_month_after_receipt(received, due):
    assert answer_due(received) == due


def test_an_extension_gives_two_further_months_after_the_first_deadline():
    assert answer_due(date(2026, 11, 30), extended=True) == date(2027, 2, 28)
    assert answer_due(date(2027, 1, 31), extended=True) == date(2027, 4, 28)  # 28 Feb + 2 months
    assert add_months(date(2026, 1, 15), 14) == date(2027, 3, 15)


def test_parents_may_always_ask_and_the_pupil_from_16():
    born = date(2010, 5, 15)
    assert may_ask(PARENT, born, date(2026, 1, 1)) is None
    assert may_ask(PARENT, None, date(2026, 1, 1)) is None
    assert "from 16" in may_ask(PUPIL, born, date(2026, 5, 14))
    assert may_ask(PUPIL, born, date(2026, 5, 15)) is None
    assert "date of birth" in may_ask(PUPIL, None, date(2026, 5, 15))


def test_early_deletion_is_lawful_only_after_leaving_and_without_a_hold():
    assert may_delete_early(enrolled=False, legal_hold=False, purged=False) is None
    assert "still enrolled" in may_delete_early(enrolled=True, legal_hold=False, purged=False)
    assert "legal hold" in may_delete_early(enrolled=False, legal_hold=True, purged=False)
    assert "already" in may_delete_early(enrolled=False, legal_hold=False, purged=True)


# --- the 72-hour clock -----------------------------------------------------------------------

DISCOVERED = datetime(2026, 11, 25, 14, 0, tzinfo=AMSTERDAM)


def test_the_regulator_must_know_within_72_hours_of_discovery():
    assert regulator_deadline(DISCOVERED) == datetime(2026, 11, 28, 13, 0, tzinfo=UTC)


def test_72_hours_are_clock_hours_across_the_summer_time_change():
    # Friday 27 March 2026, 09:00 in Rotterdam; the clocks go forward on Sunday 29 March.
    discovered = datetime(2026, 3, 27, 9, 0, tzinfo=AMSTERDAM)
    deadline = regulator_deadline(discovered)
    assert deadline - discovered == timedelta(hours=72)
    assert deadline.astimezone(AMSTERDAM) == datetime(2026, 3, 30, 10, 0, tzinfo=AMSTERDAM)


def test_a_discovery_time_without_a_zone_is_refused():
    with pytest.raises(ValueError):
        regulator_deadline(datetime(2026, 11, 25, 14, 0))


@pytest.mark.parametrize(("now", "reported", "status"), [
    (DISCOVERED + timedelta(hours=71, minutes=59), None, "open"),
    (DISCOVERED + timedelta(hours=72), None, "open"),              # the last moment still counts
    (DISCOVERED + timedelta(hours=72, seconds=1), None, "overdue"),
    (DISCOVERED + timedelta(hours=80), DISCOVERED + timedelta(hours=72), "reported"),
    (DISCOVERED + timedelta(hours=80), DISCOVERED + timedelta(hours=73), "reported-late"),
])
def test_the_clock_says_where_a_leak_stands(now, reported, status):
    assert leak_clock(DISCOVERED, reported, now, not_reportable=True).status == "not-reportable"
    clock = leak_clock(DISCOVERED, reported, now)
    assert clock.status == status
    if reported is None:
        assert clock.seconds_left == pytest.approx((DISCOVERED + timedelta(hours=72) - now).total_seconds())


def test_a_late_report_must_say_why():
    now = DISCOVERED + timedelta(days=5)
    late = DISCOVERED + timedelta(hours=73)
    assert "reasons for the delay" in report_problem(DISCOVERED, late, None, now)
    assert report_problem(DISCOVERED, late, "forensisch onderzoek liep", now) is None
    assert report_problem(DISCOVERED, DISCOVERED + timedelta(hours=5), None, now) is None
    assert "precede" in report_problem(DISCOVERED, DISCOVERED - timedelta(hours=1), None, now)
    assert "before it was made" in report_problem(DISCOVERED, now + timedelta(hours=1), None, now)


# --- who a leak affects --------------------------------------------------------------------

BRANCH, OTHER_BRANCH = uuid.uuid4(), uuid.uuid4()
JULY = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
ADDRESS = e.Address(street="Schiekade", house_number="12", postcode="3032 AJ", city="Rotterdam")


class Log:
    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def add(self, event: e.Event, when: datetime, erased: bool = False) -> None:
        offset = len(self.entries)
        recorded = RecordedEvent(id=str(uuid.uuid4()), type=event.event_type, source="/test", recorded_at=when,
                                 effective_at=when, correlation_id="c", causation_id=None, key_id=None, event=event,
                                 erased=erased)
        self.entries.append(Entry(LogRecord(str(event.topic), 0, offset, None, None, ()), recorded))


def school_with_pupils() -> tuple[Log, dict[str, uuid.UUID]]:
    ids = {name: uuid.uuid4() for name in ("ib", "teacher", "ib_other", "anna", "bram", "cas", "d_anna", "d_cas")}
    log = Log()
    for branch, name in ((BRANCH, "OBS De Regenboog"), (OTHER_BRANCH, "CBS Het Anker")):
        log.add(e.BranchFounded(branch_id=branch, vestigingscode="12AB00" if branch == BRANCH else "34CD00",
                                name=name, address=ADDRESS, phone="+31101234567", wijknetwerk="Noord"), JULY)
    for staff, branch, role in (("ib", BRANCH, "ib_er"), ("teacher", BRANCH, "leerkracht"),
                                ("ib_other", OTHER_BRANCH, "ib_er")):
        log.add(e.StaffJoined(branch_id=branch, staff_id=ids[staff], role=e.StaffRole(role), name="N",
                              email="n@school.example"), JULY)
    for pupil, branch, emails in (("anna", BRANCH, ["a1@example.nl", "a2@example.nl"]),
                                  ("bram", BRANCH, ["b@example.nl"]), ("cas", OTHER_BRANCH, ["c@example.nl"])):
        log.add(e.PupilEnrolled(branch_id=branch, pupil_id=ids[pupil], name=pupil.title(),
                                date_of_birth=date(2015, 3, 1), parent_emails=emails), JULY)
    log.add(e.DossierOpened(branch_id=BRANCH, dossier_id=ids["d_anna"], pupil_id=ids["anna"],
                            contact_staff_id=ids["teacher"], summary="Anna leest moeizaam."), JULY + timedelta(days=1))
    log.add(e.DossierOpened(branch_id=OTHER_BRANCH, dossier_id=ids["d_cas"], pupil_id=ids["cas"],
                            contact_staff_id=ids["ib_other"], summary="Cas."), JULY + timedelta(days=1))
    return log, ids


def leak(**scope: list[uuid.UUID]) -> e.DataLeaked:
    return e.DataLeaked(leak_id=uuid.uuid4(), nature="export naar verkeerde school gemaild",
                        discovered_at=JULY + timedelta(days=30), **scope)


def test_a_leaked_dossier_affects_its_pupil_and_records_who_could_see_it():
    log, ids = school_with_pupils()
    scope = leak_scope(log.entries, build_index(log.entries), leak(dossier_ids=[ids["d_anna"]]))
    assert scope.pupil_ids == (ids["anna"],)
    assert {(x.staff_id, x.rule) for x in scope.exposures} == {(ids["ib"], "ib_er-sees-branch"),
                                                                (ids["teacher"], "contact-person")}
    assert scope.unknown == ()


def test_a_leaked_account_affects_every_pupil_whose_dossier_it_could_see():
    log, ids = school_with_pupils()
    scope = leak_scope(log.entries, build_index(log.entries), leak(staff_ids=[ids["ib"]]))
    assert scope.pupil_ids == (ids["anna"],), "Bram has no dossier, Cas is at another school"
    scope = leak_scope(log.entries, build_index(log.entries), leak(staff_ids=[ids["ib"], ids["ib_other"]]))
    assert set(scope.pupil_ids) == {ids["anna"], ids["cas"]}


def test_an_account_that_departed_before_the_discovery_exposed_nothing_then():
    log, ids = school_with_pupils()
    log.add(e.StaffDeparted(branch_id=BRANCH, staff_id=ids["ib"]), JULY + timedelta(days=10))
    scope = leak_scope(log.entries, build_index(log.entries), leak(staff_ids=[ids["ib"]]))
    assert scope.pupil_ids == ()


def test_named_pupils_and_unknown_ids_are_kept_apart():
    log, ids = school_with_pupils()
    stranger = uuid.uuid4()
    scope = leak_scope(log.entries, build_index(log.entries), leak(pupil_ids=[ids["bram"], stranger]))
    assert scope.pupil_ids == (ids["bram"],) and scope.unknown == (stranger,)


def test_parents_are_told_at_their_corrected_address_and_not_after_a_purge():
    log, ids = school_with_pupils()
    log.add(e.PupilDetailsCorrected(pupil_id=ids["anna"], request_id=uuid.uuid4(),
                                    parent_emails=["nieuw@example.nl"]), JULY + timedelta(days=2))
    index = build_index(log.entries)
    assert parents_to_tell(index, ids["anna"]) == ["nieuw@example.nl"]
    assert index.pupils[ids["anna"]].name == "Anna", "fields not corrected stay"
    purged, purged_ids = school_with_pupils()
    purged.entries = [x for x in purged.entries if not isinstance(x.event.event, e.PupilEnrolled)]
    purged.add(e.PupilEnrolled(branch_id=BRANCH, pupil_id=purged_ids["bram"], name=e.ERASED,
                               date_of_birth=e.ERASED, parent_emails=e.ERASED), JULY, erased=True)
    assert parents_to_tell(build_index(purged.entries), purged_ids["bram"]) == []


def test_the_inspection_export_holds_everything_about_the_pupil_and_nothing_else():
    log, ids = school_with_pupils()
    log.add(e.DossierViewed(staff_id=ids["teacher"], branch_id=BRANCH, dossier_id=ids["d_anna"], allowed=True,
                            rule="contact-person", viewed_at=JULY + timedelta(days=3), entry_hash="h"),
            JULY + timedelta(days=3))
    log.add(e.DataLeaked(leak_id=uuid.uuid4(), nature="lijst gemaild", discovered_at=JULY + timedelta(days=5),
                         pupil_ids=[ids["anna"], ids["bram"]]), JULY + timedelta(days=5))
    now = JULY + timedelta(days=40)
    export = inspection(log.entries, build_index(log.entries), ids["anna"], now,
                        {"consents": [], "purge_due_on": None, "legal_hold": False, "requests": []})
    assert export is not None
    assert export["details"]["name"] == "Anna" and export["details"]["school"] == "OBS De Regenboog"
    assert export["details"]["parent_emails"] == ["a1@example.nl", "a2@example.nl"]
    [dossier] = export["dossiers"]
    assert dossier["summary"] == "Anna leest moeizaam."
    assert dossier["views"] == [{"at": (JULY + timedelta(days=3)).isoformat(), "role": "leerkracht", "allowed": True}]
    assert {w["rule"] for w in dossier["may_see_now"]} == {"ib_er-sees-branch", "contact-person"}
    assert [x["type"] for x in export["events"]] == ["PupilEnrolled", "DossierOpened", "DossierViewed",
                                                     "DataLeaked"]
    assert "Bram" not in str(export) and "Cas" not in str(export)
    assert str(ids["bram"]) not in str(export), "the leak event lists other pupils: not theirs to see"
    assert not any(str(ids[who]) in str(export) for who in ("ib", "teacher")), "staff appear by role only"
    assert export["events"][1]["data"]["contact_staff_role"] == "leerkracht"
    page = inspection_page(export, uuid.uuid4())
    assert "Anna leest moeizaam." in page and "intern begeleider" in page and "OBS De Regenboog" in page
    assert inspection(log.entries, build_index(log.entries), uuid.uuid4(), now, {}) is None


@pytest.mark.parametrize("notice", sorted(LEAK_NOTICES))
def test_the_leak_mail_is_dutch_from_a_fixed_text_and_names_the_contact(notice):
    mail = leak_notice(uuid.uuid4(), DISCOVERED, notice, "fg@ppo.example")
    assert "datalek" in mail.body and "25 november 2026 om 14:00 uur" in mail.body
    assert "fg@ppo.example" in mail.body and "Datalek" in mail.subject
    text = LEAK_NOTICES[notice]
    assert text.happened in mail.body and text.consequences in mail.body and text.measures in mail.body


def test_the_leak_mail_takes_no_free_text():
    """The finding: whoever could register a leak had their own words mailed as an official
    notice to every parent of a wijknetwerk. The mail is built from a fixed text only."""
    import inspect

    assert set(inspect.signature(leak_notice).parameters) == {"leak_id", "discovered_at", "notice",
                                                              "privacy_contact"}
    unknown = leak_notice(uuid.uuid4(), DISCOVERED, "Klik hier: https://evil.example", "fg@ppo.example")
    assert "evil" not in unknown.body and LEAK_NOTICES["anders"].happened in unknown.body


@pytest.mark.parametrize(("kind", "outcome", "expected"), [
    ("inspect", "provided", "overzicht van alle gegevens"),
    ("correct", "corrected", "geboortedatum"),
    ("delete", "deleted", "de sleutel waarmee deze\ngegevens versleuteld waren is vernietigd"),
    ("delete", "refused", "Wij kunnen de gegevens van uw kind nu niet verwijderen. De reden: uw kind is nog"),
])
def test_each_answer_has_its_dutch_letter(kind, outcome, expected):
    letter = answer_letter({"request_id": str(uuid.uuid4()), "kind": kind, "outcome": outcome,
                            "requested_by": "parent", "received_on": date(2026, 11, 2),
                            "answered_at": DISCOVERED, "corrected_fields": ["date_of_birth"],
                            "refusal_reason": "uw kind is nog ingeschreven"}, "fg@ppo.example")
    assert expected in letter and "2 november 2026" in letter and "fg@ppo.example" in letter
    assert "Aan de ouder(s)/verzorger(s)" in letter and "rechter" in letter


def test_a_pupils_own_request_is_answered_to_the_pupil():
    letter = answer_letter({"request_id": str(uuid.uuid4()), "kind": "delete", "outcome": "refused",
                            "requested_by": "pupil", "received_on": date(2026, 11, 2), "answered_at": DISCOVERED,
                            "corrected_fields": [], "refusal_reason": "je staat nog ingeschreven"}, "fg@ppo.example")
    assert "Aan de leerling" in letter and "uw gegevens nu niet verwijderen" in letter
    assert "ouder" not in letter and "uw kind" not in letter
