"""The access policy, rule by rule and transition by transition (pure: no broker, no database)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from functools import reduce

import pytest

from services.access.domain import (
    DENY_AGREEMENT_EXPIRED,
    DENY_CONTACT_TEXT_ONLY,
    DENY_DOSSIER_CLOSED,
    DENY_NO_AGREEMENT,
    DENY_VIEW_ONLY,
    INITIAL_STATE,
    RULE_CONTACT,
    RULE_DIRECTEUR,
    RULE_EXPLICIT,
    RULE_IB_ER,
    RULE_SWV,
    AccessState,
    ChangeKind,
    Refused,
    decide_agreement,
    decide_agreement_revoke,
    decide_grant,
    decide_revoke,
    evolve,
    reactions,
)
from shared.contracts import events as e
from shared.contracts.envelope import RecordedEvent

JULY = datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
BRANCH = uuid.UUID("11111111-1111-4111-8111-111111111111")
OTHER_BRANCH = uuid.UUID("11111111-1111-4111-8111-222222222222")
DOSSIER = uuid.UUID("44444444-4444-4444-8444-444444444444")
PUPIL = uuid.UUID("33333333-3333-4333-8333-333333333333")
ADDRESS = e.Address(street="Schiekade", house_number="12", postcode="3032 AJ", city="Rotterdam")


def staff() -> uuid.UUID:
    return uuid.uuid4()


def at(event: e.Event, effective: datetime, recorded: datetime | None = None) -> RecordedEvent:
    return RecordedEvent(id=str(uuid.uuid4()), type=event.event_type, source="/test", recorded_at=recorded or effective,
                         effective_at=effective, correlation_id="c", causation_id=None, key_id=None, event=event,
                         erased=False)


def joined(staff_id: uuid.UUID, role: str, when: datetime = JULY, branch: uuid.UUID = BRANCH,
           access_until: date | None = None) -> RecordedEvent:
    return at(e.StaffJoined(branch_id=branch, staff_id=staff_id, role=e.StaffRole(role), name="N",
                            email="n@school.example", access_until=access_until), when)


def agreed(staff_id: uuid.UUID, signed_on: date = date(2026, 6, 15), valid_until: date = date(2027, 6, 30),
           version: str = "geheimhouding-2026-1", recorded: datetime = JULY) -> RecordedEvent:
    """A confidentiality agreement, in effect from its signing (as the service records it)."""
    return at(e.ConfidentialityAgreementRecorded(staff_id=staff_id, branch_id=BRANCH, version=version,
                                                 signed_on=signed_on, valid_until=valid_until), recorded)


def world(*extra: RecordedEvent, contact: uuid.UUID | None = None) -> AccessState:
    history = [
        at(e.BranchFounded(branch_id=BRANCH, vestigingscode="12AB00", name="OBS De Regenboog", address=ADDRESS,
                           phone="+31101234567", wijknetwerk="Noord"), JULY - timedelta(days=400)),
        at(e.BranchFounded(branch_id=OTHER_BRANCH, vestigingscode="34CD00", name="OBS Elders", address=ADDRESS,
                           phone="+31101234567", wijknetwerk="Charlois"), JULY - timedelta(days=400)),
    ]
    history += [x for x in extra if x.type in ("StaffJoined", "ConsultantJoined")]
    history.append(at(e.DossierOpened(branch_id=BRANCH, dossier_id=DOSSIER, pupil_id=PUPIL,
                                      contact_staff_id=contact or uuid.uuid4(), summary="S"), JULY + timedelta(days=1)))
    history += [x for x in extra if x.type not in ("StaffJoined", "ConsultantJoined")]
    return reduce(evolve, history, INITIAL_STATE)


LATER = JULY + timedelta(days=10)


@pytest.mark.parametrize(("role", "rule"), [("ib_er", RULE_IB_ER), ("directeur", RULE_DIRECTEUR)])
def test_ib_er_and_director_see_every_dossier_of_their_branch_also_future_ones(role, rule):
    person = staff()
    decision = world(joined(person, role)).decide(person, DOSSIER, LATER)
    assert decision.allowed and decision.rule == rule and decision.role is e.StaffRole(role)
    assert decision.since == JULY + timedelta(days=1), "since the dossier exists (it came after them)"


@pytest.mark.parametrize("role", ["ib_er", "directeur", "leerkracht"])
def test_nobody_sees_another_branchs_dossiers_by_role(role):
    person = staff()
    decision = world(joined(person, role, branch=OTHER_BRANCH)).decide(person, DOSSIER, LATER)
    assert not decision.allowed and decision.rule == "no-rule"


def test_a_teacher_sees_only_dossiers_they_are_contact_person_of():
    teacher, colleague = staff(), staff()
    state = world(joined(teacher, "leerkracht"), joined(colleague, "leerkracht"), contact=teacher)
    mine = state.decide(teacher, DOSSIER, LATER)
    assert mine.allowed and mine.rule == RULE_CONTACT
    assert not state.decide(colleague, DOSSIER, LATER).allowed


def test_a_teacher_sees_an_explicitly_granted_dossier_until_it_is_revoked():
    teacher = staff()
    granted = at(e.AccessGranted(staff_id=teacher, dossier_id=DOSSIER, rule=RULE_EXPLICIT), JULY + timedelta(days=2))
    revoked = at(e.AccessRevoked(staff_id=teacher, dossier_id=DOSSIER, rule=RULE_EXPLICIT, reason="r"),
                 JULY + timedelta(days=5))
    state = world(joined(teacher, "leerkracht"), granted, revoked)
    assert state.decide(teacher, DOSSIER, JULY + timedelta(days=3)).rule == RULE_EXPLICIT
    assert not state.decide(teacher, DOSSIER, JULY + timedelta(days=5)).allowed


def test_externs_and_interns_see_only_explicit_grants_that_expire_by_themselves():
    intern = staff()
    until = JULY + timedelta(days=20)
    granted = at(e.AccessGranted(staff_id=intern, dossier_id=DOSSIER, rule=RULE_EXPLICIT, until=until),
                 JULY + timedelta(days=2))
    state = world(joined(intern, "stagiair", access_until=date(2027, 1, 31)), agreed(intern), granted,
                  contact=intern)
    assert state.decide(intern, DOSSIER, JULY + timedelta(days=19)).rule == RULE_EXPLICIT
    expired = state.decide(intern, DOSSIER, until)
    assert not expired.allowed and expired.rule == "access-expired"
    # Being contact person gives an intern nothing without a grant.
    assert not world(joined(intern, "stagiair", access_until=date(2027, 1, 31)), agreed(intern),
                     contact=intern).decide(intern, DOSSIER, LATER).allowed


def test_an_externs_own_access_period_ends_every_grant():
    extern = staff()
    granted = at(e.AccessGranted(staff_id=extern, dossier_id=DOSSIER, rule=RULE_EXPLICIT,
                                 until=JULY + timedelta(days=100)), JULY + timedelta(days=2))
    state = world(joined(extern, "extern", access_until=date(2026, 7, 31)), agreed(extern), granted)
    assert state.decide(extern, DOSSIER, datetime(2026, 7, 31, 21, 59, tzinfo=UTC)).allowed  # 23:59 Dutch time
    assert state.decide(extern, DOSSIER, datetime(2026, 7, 31, 22, 0, tzinfo=UTC)).rule == "access-expired"


def test_an_swv_consultant_sees_dossiers_of_their_wijknetwerk():
    consultant, elsewhere = staff(), staff()
    state = world(at(e.ConsultantJoined(staff_id=consultant, name="A", email="a@swv.example",
                                        wijknetwerken=["Noord"]), JULY),
                  at(e.ConsultantJoined(staff_id=elsewhere, name="B", email="b@swv.example",
                                        wijknetwerken=["Charlois"]), JULY))
    assert state.decide(consultant, DOSSIER, LATER).rule == RULE_SWV
    assert not state.decide(elsewhere, DOSSIER, LATER).allowed
    moved = evolve(state, at(e.BranchWijknetwerkChanged(branch_id=BRANCH, vestigingscode="12AB00",
                                                        wijknetwerk="Charlois"), LATER))
    assert moved.decide(elsewhere, DOSSIER, LATER).allowed and not moved.decide(consultant, DOSSIER, LATER).allowed


def test_an_administrator_sees_no_dossier_by_role():
    admin = staff()
    assert world(joined(admin, "administrator")).decide(admin, DOSSIER, LATER).rule == "no-rule"


@pytest.mark.parametrize("role", ["ib_er", "directeur", "leerkracht"])
def test_a_departure_in_the_past_denies_at_once(role):
    person = staff()
    left = JULY + timedelta(days=3)
    state = world(joined(person, role), at(e.StaffDeparted(branch_id=BRANCH, staff_id=person), left,
                                           recorded=left + timedelta(days=4)), contact=person)
    decision = state.decide(person, DOSSIER, LATER)
    assert not decision.allowed and decision.rule == "departed" and decision.since == left
    assert state.staff[person].departure_recorded_at == left + timedelta(days=4)


def test_a_departure_in_the_future_denies_from_its_moment():
    ib_er = staff()
    leaving = JULY + timedelta(days=30)
    state = world(joined(ib_er, "ib_er"), at(e.StaffDeparted(branch_id=BRANCH, staff_id=ib_er), leaving,
                                             recorded=LATER))
    assert state.decide(ib_er, DOSSIER, leaving - timedelta(seconds=1)).allowed
    assert not state.decide(ib_er, DOSSIER, leaving).allowed


def test_a_departed_person_sees_nothing_whatever_grant_they_hold():
    teacher = staff()
    state = world(joined(teacher, "leerkracht"),
                  at(e.AccessGranted(staff_id=teacher, dossier_id=DOSSIER, rule=RULE_EXPLICIT),
                     JULY + timedelta(days=2)),
                  at(e.StaffDeparted(branch_id=BRANCH, staff_id=teacher), JULY + timedelta(days=3)))
    assert state.decide(teacher, DOSSIER, LATER).rule == "departed"


def test_a_role_change_changes_what_they_see():
    person = staff()
    promoted = at(e.StaffRoleChanged(branch_id=BRANCH, staff_id=person, previous_role=e.StaffRole.LEERKRACHT,
                                     role=e.StaffRole.IB_ER), JULY + timedelta(days=5))
    assert not world(joined(person, "leerkracht")).decide(person, DOSSIER, JULY + timedelta(days=4)).allowed
    state = world(joined(person, "leerkracht"), promoted)
    assert state.decide(person, DOSSIER, JULY + timedelta(days=6)).rule == RULE_IB_ER
    demoted = evolve(state, at(e.StaffRoleChanged(branch_id=BRANCH, staff_id=person, previous_role=e.StaffRole.IB_ER,
                                                  role=e.StaffRole.LEERKRACHT), JULY + timedelta(days=7)))
    assert not demoted.decide(person, DOSSIER, JULY + timedelta(days=8)).allowed


def test_a_brin_change_keeps_every_grant():
    ib_er, consultant = staff(), staff()
    state = world(joined(ib_er, "ib_er"), at(e.ConsultantJoined(staff_id=consultant, name="A", email="a@swv.example",
                                                                 wijknetwerken=["Noord"]), JULY))
    changed = evolve(state, at(e.BranchBrinChanged(branch_id=BRANCH, previous_vestigingscode="12AB00",
                                                   vestigingscode="56EF00"), LATER))
    assert changed.decide(ib_er, DOSSIER, LATER).rule == RULE_IB_ER
    assert changed.decide(consultant, DOSSIER, LATER).rule == RULE_SWV


def test_a_contact_reassignment_moves_the_contact_rule():
    old, new = staff(), staff()
    state = world(joined(old, "leerkracht"), joined(new, "leerkracht"),
                  at(e.DossierContactAssigned(branch_id=BRANCH, dossier_id=DOSSIER, contact_staff_id=new,
                                              reason="contact departed"), LATER), contact=old)
    assert state.decide(new, DOSSIER, LATER).rule == RULE_CONTACT
    assert not state.decide(old, DOSSIER, LATER).allowed


def test_unknown_staff_and_dossiers_are_denied():
    assert world().decide(staff(), DOSSIER, LATER).rule == "unknown-staff"
    person = staff()
    assert world(joined(person, "ib_er")).decide(person, uuid.uuid4(), LATER).rule == "unknown-dossier"


# --- reactions and explicit grants ----------------------------------------------------------

def test_a_departure_revokes_the_role_rule_and_live_grants_and_stops_notifications():
    ib_er = staff()
    state = world(joined(ib_er, "ib_er"))
    departed = at(e.StaffDeparted(branch_id=BRANCH, staff_id=ib_er), LATER)
    after = evolve(state, departed)
    from services.access.domain import Grant

    live = Grant(ib_er, DOSSIER, JULY, None)
    out = reactions(departed, state.staff[ib_er], after.staff[ib_er], [live])
    assert [type(x).__name__ for x in out] == ["AccessRevoked", "AccessRevoked", "NotificationsStopped"]
    assert out[0].rule == RULE_IB_ER and out[1].dossier_id == DOSSIER


def test_joining_as_ib_er_grants_the_branch_rule_and_a_role_change_swaps_it():
    person = staff()
    first = joined(person, "ib_er")
    member = evolve(INITIAL_STATE, first).staff[person]
    assert [(type(x).__name__, x.rule) for x in reactions(first, None, member, [])] == [("AccessGranted", RULE_IB_ER)]
    change = at(e.StaffRoleChanged(branch_id=BRANCH, staff_id=person, previous_role=e.StaffRole.IB_ER,
                                   role=e.StaffRole.DIRECTEUR), LATER)
    after = evolve(evolve(INITIAL_STATE, first), change).staff[person]
    assert [(type(x).__name__, x.rule) for x in reactions(change, member, after, [])] == [
        ("AccessRevoked", RULE_IB_ER), ("AccessGranted", RULE_DIRECTEUR)]


def test_only_an_ib_er_or_director_who_sees_the_dossier_may_grant_it():
    ib_er, teacher, intern = staff(), staff(), staff()
    state = world(joined(ib_er, "ib_er"), joined(teacher, "leerkracht"),
                  joined(intern, "stagiair", access_until=date(2027, 1, 31)))
    dossier = state.dossiers[DOSSIER]

    def grant(granter, grantee, until=None):
        return decide_grant(state.staff.get(granter), state.decide(granter, DOSSIER, LATER), state.staff.get(grantee),
                            dossier, until, LATER)

    granted = grant(ib_er, teacher)
    assert isinstance(granted, e.AccessGranted) and granted.rule == RULE_EXPLICIT and granted.dossier_id == DOSSIER
    assert grant(teacher, ib_er) == Refused("not-allowed-to-grant",
                                            "only an IB'er or director of the dossier's own branch can grant it")
    assert grant(ib_er, intern).code == "end-date-required"
    assert grant(ib_er, intern, until=LATER - timedelta(days=1)).code == "end-date-passed"
    assert isinstance(grant(ib_er, intern, until=LATER + timedelta(days=30)), e.AccessGranted)
    assert decide_revoke(state.staff[ib_er], state.decide(ib_er, DOSSIER, LATER), None, LATER).code == \
        "no-active-grant"


def test_an_ib_er_of_another_branch_who_holds_a_grant_may_not_pass_the_dossier_on():
    """Grants stay within the branch: an IB'er of another school who was granted this dossier
    sees it (explicit grant) but may not grant or revoke it for anyone."""
    outsider, colleague = staff(), staff()
    granted = at(e.AccessGranted(staff_id=outsider, dossier_id=DOSSIER, rule=RULE_EXPLICIT), JULY + timedelta(days=2))
    state = world(joined(outsider, "ib_er", branch=OTHER_BRANCH), joined(colleague, "leerkracht", branch=OTHER_BRANCH),
                  granted)
    decision = state.decide(outsider, DOSSIER, LATER)
    assert decision.allowed and decision.rule == RULE_EXPLICIT
    refused = decide_grant(state.staff[outsider], decision, state.staff[colleague], state.dossiers[DOSSIER], None,
                           LATER)
    assert isinstance(refused, Refused) and refused.code == "not-allowed-to-grant"
    assert decide_revoke(state.staff[outsider], decision, state.grants[(outsider, DOSSIER)], LATER).code == \
        "not-allowed-to-grant"


def test_a_grant_names_who_gave_it_with_which_client_and_for_whom():
    ib_er, teacher = staff(), staff()
    state = world(joined(ib_er, "ib_er"), joined(teacher, "leerkracht"))
    acted_by = e.ActedBy(actor=str(ib_er), client="kindkans-backend", on_behalf_of=str(ib_er))
    granted = decide_grant(state.staff[ib_er], state.decide(ib_er, DOSSIER, LATER), state.staff[teacher],
                           state.dossiers[DOSSIER], None, LATER, acted_by)
    assert isinstance(granted, e.AccessGranted) and granted.acted_by == acted_by


def test_folds_may_skip_every_event_type_evolve_does_not_read():
    """The audit and the leak work skip events outside FOLDED_TYPES before folding; that is only
    right while evolve leaves the state as it is for each of them."""
    from services.access.domain import FOLDED_TYPES, INITIAL_STATE
    from shared.contracts.events import EVENT_TYPES
    from tests.unit.samples import SAMPLES

    assert set(EVENT_TYPES) >= FOLDED_TYPES, "a type named there does not exist"
    moment = datetime(2026, 9, 1, 8, 30, tzinfo=UTC)
    state = reduce(evolve, [at(s, moment) for s in SAMPLES
                            if s.event_type in FOLDED_TYPES - {"PupilDataPurged"}], INITIAL_STATE)
    assert state.staff and state.dossiers and state.wijknetwerken, "a state with something in it"
    skipped = [s for s in SAMPLES if s.event_type not in FOLDED_TYPES]
    assert {s.event_type for s in skipped} >= {"DossierViewed", "LoginSucceeded", "DataLeaked"}
    for sample in skipped:
        assert evolve(state, at(sample, moment)) is state, sample.event_type


# --- confidentiality agreements (issue 16, item 4) ------------------------------------------

def _intern_with_grant(*agreements: RecordedEvent, role: str = "stagiair") -> tuple[uuid.UUID, AccessState]:
    intern = staff()
    granted = at(e.AccessGranted(staff_id=intern, dossier_id=DOSSIER, rule=RULE_EXPLICIT,
                                 until=JULY + timedelta(days=200)), JULY + timedelta(days=1, hours=1))
    return intern, world(joined(intern, role, access_until=date(2027, 6, 30)), granted,
                         *[replace_staff(a, intern) for a in agreements])


def replace_staff(recorded: RecordedEvent, staff_id: uuid.UUID) -> RecordedEvent:
    import dataclasses

    return dataclasses.replace(recorded, event=recorded.event.model_copy(update={"staff_id": staff_id}))


@pytest.mark.parametrize("role", ["stagiair", "extern"])
def test_without_an_agreement_no_grant_of_an_extern_or_intern_takes_effect_and_the_check_says_why(role):
    intern, state = _intern_with_grant(role=role)
    decision = state.decide(intern, DOSSIER, LATER)
    assert not decision.allowed and decision.rule == DENY_NO_AGREEMENT
    assert "confidentiality agreement" in decision.reason


def test_with_a_valid_agreement_the_grant_takes_effect_and_its_expiry_ends_access_like_an_end_date():
    placeholder = staff()
    intern, state = _intern_with_grant(agreed(placeholder, signed_on=date(2026, 7, 3), valid_until=date(2026, 7, 20)))
    assert state.decide(intern, DOSSIER, datetime(2026, 7, 2, 21, 59, tzinfo=UTC)).rule == DENY_NO_AGREEMENT, \
        "not before the day it was signed"
    assert state.decide(intern, DOSSIER, datetime(2026, 7, 2, 22, 0, tzinfo=UTC)).rule == RULE_EXPLICIT, \
        "from the start of the signing day, Dutch time"
    assert state.decide(intern, DOSSIER, datetime(2026, 7, 20, 21, 59, tzinfo=UTC)).allowed, "through its last day"
    expired = state.decide(intern, DOSSIER, datetime(2026, 7, 20, 22, 0, tzinfo=UTC))
    assert not expired.allowed and expired.rule == DENY_AGREEMENT_EXPIRED
    assert expired.since == datetime(2026, 7, 20, 22, 0, tzinfo=UTC)


def test_a_renewed_agreement_restores_access_and_a_revoked_one_ends_it():
    placeholder = staff()
    intern, state = _intern_with_grant(
        agreed(placeholder, signed_on=date(2026, 7, 1), valid_until=date(2026, 7, 5)),
        agreed(placeholder, signed_on=date(2026, 7, 8), valid_until=date(2026, 12, 31), version="v2",
               recorded=JULY + timedelta(days=7)))
    assert state.decide(intern, DOSSIER, JULY + timedelta(days=6)).rule in (DENY_NO_AGREEMENT,
                                                                             DENY_AGREEMENT_EXPIRED)
    assert state.decide(intern, DOSSIER, LATER).rule == RULE_EXPLICIT
    revoked = evolve(state, at(e.ConfidentialityAgreementRevoked(staff_id=intern, version="v2", reason="r"),
                               LATER + timedelta(days=1)))
    assert revoked.decide(intern, DOSSIER, LATER).allowed, "a revocation does not reach back"
    after = revoked.decide(intern, DOSSIER, LATER + timedelta(days=2))
    assert not after.allowed and after.rule == DENY_NO_AGREEMENT
    stale = evolve(state, at(e.ConfidentialityAgreementRevoked(staff_id=intern, version="v1", reason="r"), LATER))
    assert stale.decide(intern, DOSSIER, LATER + timedelta(days=2)).allowed, "only the version in force is revoked"


def test_staff_with_standing_rules_need_no_agreement():
    ib_er, teacher = staff(), staff()
    state = world(joined(ib_er, "ib_er"), joined(teacher, "leerkracht"), contact=teacher)
    assert state.decide(ib_er, DOSSIER, LATER).allowed and state.decide(teacher, DOSSIER, LATER).allowed


def test_only_the_ib_er_or_director_of_the_own_branch_records_an_agreement_for_an_extern_or_intern():
    ib_er, director, teacher, intern, elsewhere, other_ib_er = (staff() for _ in range(6))
    state = world(joined(ib_er, "ib_er"), joined(director, "directeur"), joined(teacher, "leerkracht"),
                  joined(intern, "stagiair", access_until=date(2027, 1, 31)),
                  joined(elsewhere, "stagiair", branch=OTHER_BRANCH, access_until=date(2027, 1, 31)),
                  joined(other_ib_er, "ib_er", branch=OTHER_BRANCH))
    today = LATER.date()
    acted_by = e.ActedBy(actor=str(ib_er), client="kindkans-backend")

    def record(recorder, subject, signed_on=today, valid_until=date(2027, 1, 31), current=None):
        return decide_agreement(state.staff.get(recorder), state.staff.get(subject), current, "geheimhouding-1",
                                signed_on, valid_until, today, LATER, acted_by)

    recorded = record(ib_er, intern)
    assert isinstance(recorded, e.ConfidentialityAgreementRecorded)
    assert (recorded.staff_id, recorded.version, recorded.valid_until, recorded.acted_by) == (
        intern, "geheimhouding-1", date(2027, 1, 31), acted_by)
    assert isinstance(record(director, intern), e.ConfidentialityAgreementRecorded)
    assert record(teacher, intern).code == "not-allowed-to-record"
    assert record(other_ib_er, intern).code == "not-allowed-to-record", "another branch's IB'er"
    assert record(ib_er, elsewhere).code == "not-allowed-to-record", "an intern of another branch"
    assert record(ib_er, teacher).code == "not-time-bound"
    assert record(ib_er, staff()).code == "unknown-staff"
    assert record(ib_er, intern, signed_on=today + timedelta(days=1)).code == "signed-in-future"
    assert record(ib_er, intern, valid_until=today - timedelta(days=1), signed_on=today - timedelta(days=5)
                  ).code == "agreement-expired"
    assert record(ib_er, intern, signed_on=today, valid_until=today - timedelta(days=1)
                  ).code == "valid-until-before-signed"
    from services.access.domain import Agreement

    newer = Agreement(intern, "geheimhouding-0", datetime(2026, 7, 10, 22, 0, tzinfo=UTC),
                      datetime(2027, 1, 1, tzinfo=UTC))
    assert record(ib_er, intern, signed_on=date(2026, 7, 5), current=newer).code == "older-than-current"
    revoked = Agreement(intern, "geheimhouding-1", JULY, datetime(2027, 1, 1, tzinfo=UTC), revoked_at=LATER)
    assert record(ib_er, intern, current=revoked).code == "version-revoked"
    in_force = Agreement(intern, "geheimhouding-1", JULY, datetime(2027, 1, 1, tzinfo=UTC))
    withdrawn = decide_agreement_revoke(state.staff[ib_er], state.staff[intern], in_force, "r", LATER)
    assert isinstance(withdrawn, e.ConfidentialityAgreementRevoked) and withdrawn.version == "geheimhouding-1"
    assert decide_agreement_revoke(state.staff[teacher], state.staff[intern], in_force, "r", LATER).code == \
        "not-allowed-to-record"
    assert decide_agreement_revoke(state.staff[ib_er], state.staff[intern], None, "r", LATER).code == \
        "no-valid-agreement"


# --- change rights (issue 16, item 5) -------------------------------------------------------

def _change(state: AccessState, staff_id: uuid.UUID, what: ChangeKind, when: datetime = LATER):
    return state.decide_change(staff_id, DOSSIER, what, when)


@pytest.mark.parametrize(("role", "rule"), [("ib_er", RULE_IB_ER), ("directeur", RULE_DIRECTEUR)])
def test_the_branchs_ib_er_and_director_change_contact_text_and_status(role, rule):
    person, outsider = staff(), staff()
    state = world(joined(person, role), joined(outsider, role, branch=OTHER_BRANCH))
    for what in ChangeKind:
        decision = _change(state, person, what)
        assert decision.allowed and decision.rule == rule, what
        assert not _change(state, outsider, what).allowed


def test_the_contact_person_changes_the_text_only():
    teacher = staff()
    state = world(joined(teacher, "leerkracht"), contact=teacher)
    assert _change(state, teacher, ChangeKind.TEXT).rule == RULE_CONTACT
    for what in (ChangeKind.CONTACT, ChangeKind.STATUS):
        decision = _change(state, teacher, what)
        assert not decision.allowed and decision.rule == DENY_CONTACT_TEXT_ONLY


@pytest.mark.parametrize("role", ["stagiair", "extern"])
def test_externs_and_interns_never_change_even_with_a_grant_and_an_agreement(role):
    intern, state = _intern_with_grant(agreed(staff()), role=role)
    assert state.decide(intern, DOSSIER, LATER).allowed, "they see it"
    for what in ChangeKind:
        decision = _change(state, intern, what)
        assert not decision.allowed and decision.rule == DENY_VIEW_ONLY


def test_explicit_grants_and_the_swv_consultant_give_view_rights_only():
    teacher, consultant = staff(), staff()
    state = world(joined(teacher, "leerkracht"),
                  at(e.ConsultantJoined(staff_id=consultant, name="A", email="a@swv.example", wijknetwerken=["Noord"]),
                     JULY),
                  at(e.AccessGranted(staff_id=teacher, dossier_id=DOSSIER, rule=RULE_EXPLICIT),
                     JULY + timedelta(days=2)))
    for who in (teacher, consultant):
        assert state.decide(who, DOSSIER, LATER).allowed
        assert all(_change(state, who, what).rule == DENY_VIEW_ONLY for what in ChangeKind)


def test_who_may_not_see_may_not_change_and_hears_the_same_reason():
    ib_er, admin = staff(), staff()
    state = world(joined(ib_er, "ib_er"), joined(admin, "administrator"),
                  at(e.StaffDeparted(branch_id=BRANCH, staff_id=ib_er), JULY + timedelta(days=3)))
    assert _change(state, ib_er, ChangeKind.STATUS).rule == "departed"
    assert _change(state, admin, ChangeKind.TEXT).rule == "no-rule"
    assert _change(state, staff(), ChangeKind.TEXT).rule == "unknown-staff"


def test_a_closed_dossier_changes_only_its_status_and_only_by_the_ib_er_or_director():
    ib_er, teacher = staff(), staff()
    state = world(joined(ib_er, "ib_er"), joined(teacher, "leerkracht"),
                  at(e.DossierClosed(branch_id=BRANCH, dossier_id=DOSSIER), JULY + timedelta(days=3)), contact=teacher)
    assert _change(state, ib_er, ChangeKind.STATUS).allowed
    assert _change(state, ib_er, ChangeKind.TEXT).rule == DENY_DOSSIER_CLOSED
    assert _change(state, ib_er, ChangeKind.CONTACT).rule == DENY_DOSSIER_CLOSED
    assert _change(state, teacher, ChangeKind.TEXT).rule == DENY_DOSSIER_CLOSED


def test_the_audit_answers_who_could_change_on_both_axes_with_the_same_policy():
    """An agreement signed on 3 July but recorded on the 9th: on the valid axis the intern could see
    (and nobody but the IB'er could change) from the 3rd; on the record axis only from the 9th."""
    from services.access.history import who_could_change, who_could_see

    ib_er, intern = staff(), staff()
    history = [
        at(e.BranchFounded(branch_id=BRANCH, vestigingscode="12AB00", name="OBS", address=ADDRESS,
                           phone="+31101234567", wijknetwerk="Noord"), JULY - timedelta(days=400)),
        joined(ib_er, "ib_er"), joined(intern, "stagiair", access_until=date(2027, 1, 31)),
        at(e.DossierOpened(branch_id=BRANCH, dossier_id=DOSSIER, pupil_id=PUPIL, contact_staff_id=ib_er,
                           summary="S"), JULY + timedelta(days=1)),
        at(e.AccessGranted(staff_id=intern, dossier_id=DOSSIER, rule=RULE_EXPLICIT, until=JULY + timedelta(days=60)),
           JULY + timedelta(days=1, hours=1)),
        at(e.ConfidentialityAgreementRecorded(staff_id=intern, branch_id=BRANCH, version="v1",
                                              signed_on=date(2026, 7, 3), valid_until=date(2026, 12, 31)),
           datetime(2026, 7, 2, 22, 0, tzinfo=UTC), recorded=datetime(2026, 7, 9, 10, 0, tzinfo=UTC)),
    ]

    def state_on(moment: datetime, axis: str) -> AccessState:
        known = [r for r in history if r.effective_at <= moment and (axis == "valid" or r.recorded_at <= moment)]
        return reduce(evolve, sorted(known, key=lambda r: r.effective_at), INITIAL_STATE)

    fifth = datetime(2026, 7, 5, 12, 0, tzinfo=UTC)
    assert {a.staff_id for a in who_could_see(state_on(fifth, "valid"), DOSSIER, fifth)} == {ib_er, intern}
    assert {a.staff_id for a in who_could_see(state_on(fifth, "record"), DOSSIER, fifth)} == {ib_er}
    for axis in ("valid", "record"):
        changers = who_could_change(state_on(fifth, axis), DOSSIER, fifth)
        assert [(c.staff_id, c.what) for c in changers] == [(ib_er, list(ChangeKind))]


def test_a_change_check_is_in_the_view_chains_hash_and_old_view_entries_still_verify():
    import hashlib

    staff_id, moment = uuid.UUID(int=7), datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    # The material of every entry logged before change checks existed, as it was computed then.
    old = hashlib.sha256("\x1f".join(["prev", "event-1", str(staff_id), str(DOSSIER), "1", RULE_IB_ER,
                                      moment.isoformat()]).encode()).hexdigest()
    assert e.view_entry_hash("prev", "event-1", staff_id, DOSSIER, True, RULE_IB_ER, moment) == old
    assert e.view_entry_hash("prev", "event-1", staff_id, DOSSIER, True, RULE_IB_ER, moment, "view") == old
    text = e.view_entry_hash("prev", "event-1", staff_id, DOSSIER, True, RULE_IB_ER, moment, "change", "text")
    status = e.view_entry_hash("prev", "event-1", staff_id, DOSSIER, True, RULE_IB_ER, moment, "change", "status")
    assert len({old, text, status}) == 3, "a view cannot pass for a change check, nor text for status"
