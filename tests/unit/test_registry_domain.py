"""The registry's rules: given earlier events, when a mutation is reported, then these events
(or this rejection). Pure: no broker, no database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from functools import reduce

import pytest
from pydantic import TypeAdapter, ValidationError

from services.registry.domain import (
    INITIAL_STATE,
    Accepted,
    Refused,
    RegistryState,
    ReportMutation,
    decide,
    dossier_id,
    evolve,
    founded_branch_id,
    pupil_id,
    staff_id,
)
from shared.contracts import events as e
from shared.contracts.mutations import Mutation

NOW = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)
SENDER = "a1b2c3d4e5f6"
MUTATION = TypeAdapter(Mutation)
ADDRESS = {"street": "Schiekade", "house_number": "12", "postcode": "3032 AJ", "city": "Rotterdam"}
BRANCH = founded_branch_id(SENDER, "found-1")


def report(**fields: object) -> Mutation:
    return MUTATION.validate_python({"mutation_id": "m-test", **fields})


def branch_report(change: str, **overrides: object) -> Mutation:
    fields = {"kind": "branch", "change": change, "vestigingscode": "12AB00", "name": "OBS De Regenboog",
              "address": ADDRESS, "phone": "010 123 4567", "wijknetwerk": "Noord"}
    fields.update(overrides)
    return report(**fields)


def run(state: RegistryState, mutation: Mutation) -> Accepted | Refused:
    return decide(ReportMutation(mutation, SENDER, received_at=NOW, effective_at=NOW), state)


def apply(state: RegistryState, mutation: Mutation) -> RegistryState:
    decision = run(state, mutation)
    assert isinstance(decision, Accepted), decision
    return reduce(evolve, decision.events, state)


def founded() -> RegistryState:
    return apply(INITIAL_STATE, branch_report("founded", mutation_id="found-1"))


def with_staff(role: str = "ib_er", ref: str = "emp-1") -> RegistryState:
    return apply(founded(), report(kind="staff_joined", vestigingscode="12AB00", staff_ref=ref, role=role,
                                   name="Fatima el Amrani", email="f.elamrani@school.example"))


def with_pupil() -> RegistryState:
    return apply(with_staff(), report(kind="pupil_enrolled", vestigingscode="12AB00", pupil_ref="lln-7",
                                      name="Daan Jansen", date_of_birth="2016-02-29",
                                      parent_emails=["ouder@example.nl"]))


def with_dossier() -> RegistryState:
    return apply(with_pupil(), report(kind="dossier_opened", vestigingscode="12AB00", dossier_ref="hv-1",
                                      pupil_ref="lln-7", contact_staff_ref="emp-1", summary="Leesproblemen."))


def closed() -> RegistryState:
    return apply(with_staff(), branch_report("closed"))


def only_event(decision: Accepted | Refused) -> e.Event:
    assert isinstance(decision, Accepted), decision
    assert len(decision.events) == 1
    return decision.events[0]


# --- branches -------------------------------------------------------------------------------

def test_founding_a_branch_gives_it_a_stable_id_and_its_report():
    event = only_event(run(INITIAL_STATE, branch_report("founded", mutation_id="found-1")))
    assert isinstance(event, e.BranchFounded)
    assert event.branch_id == BRANCH and event.vestigingscode == "12AB00"
    assert event.phone == "+31101234567" and event.wijknetwerk == "Noord"


def test_a_code_of_an_open_branch_cannot_be_founded_again():
    assert run(founded(), branch_report("founded", mutation_id="found-2")) == Refused(
        "code-in-use", "vestigingscode 12AB00 belongs to an open branch")


def test_the_code_of_a_closed_branch_may_be_used_for_a_new_branch():
    event = only_event(run(closed(), branch_report("founded", mutation_id="found-2")))
    assert isinstance(event, e.BranchFounded) and event.branch_id != BRANCH


@pytest.mark.parametrize(("change", "overrides", "event_type", "field", "value"), [
    ("moved", {"address": {**ADDRESS, "street": "Bergweg", "postcode": "3036 BA"}}, e.BranchMoved, "address",
     e.Address(street="Bergweg", house_number="12", postcode="3036 BA", city="Rotterdam")),
    ("renamed", {"name": "IKC De Regenboog"}, e.BranchRenamed, "name", "IKC De Regenboog"),
    ("wijknetwerk_changed", {"wijknetwerk": "Charlois"}, e.BranchWijknetwerkChanged, "wijknetwerk", "Charlois"),
    ("brin_changed", {"new_vestigingscode": "34CD01"}, e.BranchBrinChanged, "vestigingscode", "34CD01"),
    ("closed", {}, e.BranchClosed, "vestigingscode", "12AB00"),
])
def test_each_branch_change_becomes_its_event_on_the_same_branch(change, overrides, event_type, field, value):
    event = only_event(run(founded(), branch_report(change, **overrides)))
    assert isinstance(event, event_type)
    assert event.branch_id == BRANCH and getattr(event, field) == value


@pytest.mark.parametrize("change", ["moved", "renamed", "wijknetwerk_changed", "closed"])
def test_a_closed_branch_takes_no_more_changes(change):
    overrides = {"moved": {"address": {**ADDRESS, "street": "Bergweg"}}, "renamed": {"name": "Nieuw"},
                 "wijknetwerk_changed": {"wijknetwerk": "Zuid"}, "closed": {}}[change]
    decision = run(closed(), branch_report(change, **overrides))
    assert isinstance(decision, Refused) and decision.code == "branch-closed"


@pytest.mark.parametrize(("change", "overrides"), [
    ("moved", {}), ("renamed", {}), ("wijknetwerk_changed", {})])
def test_a_change_that_changes_nothing_is_refused(change, overrides):
    decision = run(founded(), branch_report(change, **overrides))
    assert isinstance(decision, Refused) and decision.code == "nothing-changed"


def test_an_unknown_branch_cannot_change():
    decision = run(INITIAL_STATE, branch_report("moved"))
    assert isinstance(decision, Refused) and decision.code == "unknown-branch"


def test_no_brin_change_onto_a_code_in_use():
    state = apply(founded(), branch_report("founded", mutation_id="found-2", vestigingscode="34CD01"))
    decision = run(state, branch_report("brin_changed", new_vestigingscode="34CD01"))
    assert decision == Refused("code-in-use", "vestigingscode 34CD01 belongs to an open branch")


def test_a_brin_change_keeps_the_branch_and_both_codes_find_it():
    state = apply(with_staff(), branch_report("brin_changed", new_vestigingscode="34CD01"))
    assert state.branch_by_code("34CD01").branch_id == state.branch_by_code("12AB00").branch_id == BRANCH
    assert state.branches[BRANCH].vestigingscode == "34CD01"
    assert not state.code_in_use("12AB00") and state.code_in_use("34CD01")
    # Staff keep following the branch under its new code.
    departed = only_event(run(state, report(kind="staff_departed", vestigingscode="34CD01", staff_ref="emp-1")))
    assert isinstance(departed, e.StaffDeparted) and departed.staff_id == staff_id(BRANCH, "emp-1")


# --- staff ----------------------------------------------------------------------------------

def test_staff_join_with_their_role():
    state = with_staff("ib_er")
    person = state.people[staff_id(BRANCH, "emp-1")]
    assert person.role is e.StaffRole.IB_ER and person.active


def test_staff_cannot_join_a_closed_branch_or_twice():
    joined = report(kind="staff_joined", vestigingscode="12AB00", staff_ref="emp-1", role="leerkracht",
                    name="A", email="a@school.example")
    assert run(closed(), joined).code == "branch-closed"
    assert run(with_staff(), joined).code == "staff-already-joined"


def test_externals_and_interns_need_an_end_date_and_others_may_not_have_one():
    with pytest.raises(ValidationError, match="access_until is required"):
        report(kind="staff_joined", vestigingscode="12AB00", staff_ref="x", role="stagiair", name="S",
               email="s@school.example")
    with pytest.raises(ValidationError, match="only for extern and stagiair"):
        report(kind="staff_joined", vestigingscode="12AB00", staff_ref="x", role="leerkracht", name="S",
               email="s@school.example", access_until="2027-01-31")
    event = only_event(run(founded(), report(kind="staff_joined", vestigingscode="12AB00", staff_ref="x",
                                             role="extern", name="S", email="s@school.example",
                                             access_until="2027-01-31")))
    assert isinstance(event, e.StaffJoined) and event.access_until == date(2027, 1, 31)


def test_schools_cannot_register_swv_consultants():
    with pytest.raises(ValidationError, match="SWV office"):
        report(kind="staff_joined", vestigingscode="12AB00", staff_ref="x", role="swv_consultant", name="S",
               email="s@school.example")


def test_a_role_change_records_the_previous_role():
    event = only_event(run(with_staff("leerkracht"), report(kind="staff_role_changed", vestigingscode="12AB00",
                                                            staff_ref="emp-1", role="ib_er")))
    assert isinstance(event, e.StaffRoleChanged)
    assert (event.previous_role, event.role) == (e.StaffRole.LEERKRACHT, e.StaffRole.IB_ER)


def test_a_role_change_needs_an_active_staff_member_and_a_change():
    change = report(kind="staff_role_changed", vestigingscode="12AB00", staff_ref="emp-1", role="ib_er")
    assert run(founded(), change).code == "staff-not-active"
    assert run(with_staff("ib_er"), change).code == "nothing-changed"


def test_a_departure_ends_the_membership():
    departed = report(kind="staff_departed", vestigingscode="12AB00", staff_ref="emp-1")
    state = apply(with_staff(), departed)
    assert not state.people[staff_id(BRANCH, "emp-1")].active
    assert run(state, departed).code == "staff-already-departed"


def test_no_departure_of_staff_who_never_joined():
    decision = run(founded(), report(kind="staff_departed", vestigingscode="12AB00", staff_ref="nobody"))
    assert decision.code == "staff-never-joined"


def test_no_departure_dated_before_the_join():
    joined = with_staff(ref="emp-0877")
    person = joined.people[staff_id(BRANCH, "emp-0877")]
    state = replace(joined, people={person.staff_id: replace(person, joined_at=NOW)})
    departed = report(kind="staff_departed", vestigingscode="12AB00", staff_ref="emp-0877",
                      effective_at="2026-08-31T23:59:00+02:00")
    refused = decide(ReportMutation(departed, SENDER, received_at=NOW, effective_at=departed.effective_at), state)
    assert isinstance(refused, Refused) and refused.code == "departure-before-join"
    on_the_day = decide(ReportMutation(departed, SENDER, received_at=NOW, effective_at=NOW), state)
    assert isinstance(on_the_day, Accepted)


def test_departures_are_accepted_at_a_closed_branch():
    # Closing a school is exactly when its staff leave; refusing it would keep access alive.
    event = only_event(run(closed(), report(kind="staff_departed", vestigingscode="12AB00", staff_ref="emp-1")))
    assert isinstance(event, e.StaffDeparted)


# --- pupils and dossiers --------------------------------------------------------------------

def test_a_pupil_enrols_and_leaves():
    state = with_pupil()
    assert state.pupils[pupil_id(BRANCH, "lln-7")].enrolled
    left = report(kind="pupil_left", vestigingscode="12AB00", pupil_ref="lln-7", left_on="2027-07-16")
    event = only_event(run(state, left))
    assert isinstance(event, e.PupilLeft) and event.left_on == date(2027, 7, 16)
    state = reduce(evolve, [event], state)
    assert run(state, left).code == "pupil-not-enrolled"


def test_a_pupil_cannot_enrol_twice_or_at_a_closed_branch():
    enrol = report(kind="pupil_enrolled", vestigingscode="12AB00", pupil_ref="lln-7", name="D",
                   date_of_birth="2016-01-01", parent_emails=["o@example.nl"])
    assert run(with_pupil(), enrol).code == "pupil-already-enrolled"
    assert run(closed(), enrol).code == "branch-closed"


def test_a_dossier_opens_with_a_working_contact_person():
    state = with_dossier()
    dossier = state.dossiers[dossier_id(BRANCH, "hv-1")]
    assert dossier.open and dossier.contact_staff_id == staff_id(BRANCH, "emp-1")


@pytest.mark.parametrize(("state", "overrides", "code"), [
    (with_dossier, {}, "dossier-exists"),
    (with_staff, {}, "pupil-not-enrolled"),
    (with_pupil, {"contact_staff_ref": "emp-unknown"}, "contact-not-active"),
])
def test_a_dossier_needs_a_pupil_a_contact_and_a_fresh_reference(state, overrides, code):
    fields = {"kind": "dossier_opened", "vestigingscode": "12AB00", "dossier_ref": "hv-1", "pupil_ref": "lln-7",
              "contact_staff_ref": "emp-1", "summary": "Tekst."}
    fields.update(overrides)
    assert run(state(), report(**fields)).code == code


def test_no_dossier_at_a_closed_branch():
    state = apply(with_pupil(), branch_report("closed"))
    decision = run(state, report(kind="dossier_opened", vestigingscode="12AB00", dossier_ref="hv-9",
                                 pupil_ref="lln-7", contact_staff_ref="emp-1", summary="Tekst."))
    assert decision.code == "branch-closed"


def test_the_contact_person_can_be_reassigned_to_working_staff_only():
    state = apply(with_dossier(), report(kind="staff_joined", vestigingscode="12AB00", staff_ref="emp-2",
                                         role="ib_er", name="B", email="b@school.example"))
    assign = report(kind="dossier_contact_assigned", vestigingscode="12AB00", dossier_ref="hv-1",
                    contact_staff_ref="emp-2")
    event = only_event(run(state, assign))
    assert isinstance(event, e.DossierContactAssigned) and event.reason == "reported"
    state = reduce(evolve, [event], state)
    assert state.dossiers[dossier_id(BRANCH, "hv-1")].contact_staff_id == staff_id(BRANCH, "emp-2")
    gone = apply(state, report(kind="staff_departed", vestigingscode="12AB00", staff_ref="emp-1"))
    back = report(kind="dossier_contact_assigned", vestigingscode="12AB00", dossier_ref="hv-1",
                  contact_staff_ref="emp-1")
    assert run(gone, back).code == "contact-not-active"


def test_a_dossier_closes_once():
    close = report(kind="dossier_closed", vestigingscode="12AB00", dossier_ref="hv-1")
    state = apply(with_dossier(), close)
    assert not state.dossiers[dossier_id(BRANCH, "hv-1")].open
    assert run(state, close).code == "dossier-not-open"
    assign = report(kind="dossier_contact_assigned", vestigingscode="12AB00", dossier_ref="hv-1",
                    contact_staff_ref="emp-1")
    assert run(state, assign).code == "dossier-not-open"


# --- SWV consultants ------------------------------------------------------------------------

OFFICE, OTHER_OFFICE = "0ff1ce000001", "0ff1ce000002"


def as_office(state: RegistryState, mutation: Mutation, office: str = OFFICE,
              wijknetwerken: frozenset[str] = frozenset({"Noord", "Charlois"})) -> Accepted | Refused:
    return decide(ReportMutation(mutation, office, received_at=NOW, effective_at=NOW, office=office,
                                 wijknetwerken=wijknetwerken), state)


def as_office_applied(state: RegistryState, mutation: Mutation, office: str = OFFICE) -> RegistryState:
    decision = as_office(state, mutation, office)
    assert isinstance(decision, Accepted), decision
    return reduce(evolve, decision.events, state)


def consultant_joined(ref: str = "swv-3", wijknetwerken: tuple[str, ...] = ("Noord",)) -> Mutation:
    return report(kind="consultant_joined", consultant_ref=ref, name="Anouk Visser", email="a.visser@swv.example",
                  wijknetwerken=list(wijknetwerken))


def consultant_departed(ref: str = "swv-3") -> Mutation:
    return report(kind="consultant_departed", consultant_ref=ref)


def test_consultants_join_and_depart_once():
    joined = consultant_joined()
    state = as_office_applied(INITIAL_STATE, joined)
    assert as_office(state, joined).code == "consultant-already-joined"
    departed = consultant_departed()
    state = as_office_applied(state, departed)
    assert as_office(state, departed).code == "consultant-never-joined"


def test_a_consultants_id_is_scoped_by_the_office_that_registered_it():
    from services.registry.domain import consultant_id

    state = as_office_applied(INITIAL_STATE, consultant_joined())
    # Another office names the same reference: it is not this office's consultant.
    assert as_office(state, consultant_departed(), OTHER_OFFICE).code == "consultant-never-joined"
    theirs = only_event(as_office(state, consultant_joined(), OTHER_OFFICE))
    assert isinstance(theirs, e.ConsultantJoined) and theirs.office == OTHER_OFFICE
    assert theirs.staff_id == consultant_id(OTHER_OFFICE, "swv-3") != consultant_id(OFFICE, "swv-3")
    assert state.people[consultant_id(OFFICE, "swv-3")].office == OFFICE


def test_an_office_departs_only_consultants_within_its_wijknetwerken():
    state = as_office_applied(INITIAL_STATE, consultant_joined(wijknetwerken=("Noord", "Charlois")))
    refused = decide(ReportMutation(consultant_departed(), OFFICE, received_at=NOW, effective_at=NOW, office=OFFICE,
                                    wijknetwerken=frozenset({"Noord"})), state)
    assert isinstance(refused, Refused) and (refused.code, refused.not_allowed) == ("wrong-wijknetwerk", True)


def legacy(office: str | None, wijknetwerken: frozenset[str] | None = frozenset({"Noord"})) -> RegistryState:
    """A consultant registered before ids were scoped by office (under `legacy_consultant_id`)."""
    from services.registry.domain import Person, legacy_consultant_id

    staff = legacy_consultant_id("swv-3")
    return RegistryState(people={staff: Person(staff, None, e.StaffRole.SWV_CONSULTANT, True, office=office,
                                               wijknetwerken=wijknetwerken)})


def test_a_consultant_under_the_old_ids_is_departed_by_its_own_office_and_refused_to_another():
    from services.registry.domain import legacy_consultant_id

    refused = as_office(legacy(OFFICE), consultant_departed(), OTHER_OFFICE)
    assert isinstance(refused, Refused) and (refused.code, refused.not_allowed) == (
        "consultant-of-another-office", True)
    assert as_office(legacy(OFFICE), consultant_joined()).code == "consultant-already-joined"
    gone = only_event(as_office(legacy(OFFICE), consultant_departed()))
    assert gone == e.ConsultantDeparted(staff_id=legacy_consultant_id("swv-3"))


def test_a_consultant_whose_office_is_unknown_is_departed_by_an_office_serving_its_wijknetwerken():
    # Departing must stay possible (a departed consultant loses access); taking over is not.
    assert isinstance(as_office(legacy(None), consultant_departed(), OTHER_OFFICE), Accepted)
    outside = as_office(legacy(None, frozenset({"Delfshaven"})), consultant_departed(), OTHER_OFFICE)
    assert outside.code == "wrong-wijknetwerk"
    assert isinstance(as_office(legacy(None, None), consultant_departed(), OTHER_OFFICE), Accepted)
    # Its reference does not make it anyone's: a join gives the office a consultant of its own.
    assert isinstance(as_office(legacy(None), consultant_joined(), OTHER_OFFICE), Accepted)


# --- time -----------------------------------------------------------------------------------

def test_decisions_do_not_depend_on_when_the_change_takes_effect():
    departed = report(kind="staff_departed", vestigingscode="12AB00", staff_ref="emp-1")
    for effective in (NOW - timedelta(days=40), NOW + timedelta(days=30)):
        decision = decide(ReportMutation(departed, SENDER, received_at=NOW, effective_at=effective), with_staff())
        assert isinstance(decision, Accepted)


def test_the_same_mutation_from_the_same_sender_derives_the_same_ids():
    first = only_event(run(INITIAL_STATE, branch_report("founded", mutation_id="found-1")))
    again = only_event(run(INITIAL_STATE, branch_report("founded", mutation_id="found-1")))
    assert first.branch_id == again.branch_id == BRANCH


def test_mutation_validation_lists_every_field_error():
    with pytest.raises(ValidationError) as caught:
        branch_report("moved", vestigingscode="12ab0", phone="12", address={**ADDRESS, "postcode": "0123 AB"})
    fields = {".".join(str(p) for p in error["loc"][1:]) for error in caught.value.errors()}
    assert {"vestigingscode", "phone", "address.postcode"} <= fields


# --- every open dossier keeps a working contact person --------------------------------------

def test_a_departed_contacts_open_dossiers_go_to_the_branchs_ib_er():
    from services.registry.domain import react

    state = apply(with_dossier(), report(kind="staff_joined", vestigingscode="12AB00", staff_ref="emp-2",
                                         role="leerkracht", name="T", email="t@school.example"))
    # The IB'er (emp-1) hands the dossier to teacher emp-2, then leaves: no IB'er remains.
    state = apply(state, report(kind="dossier_contact_assigned", vestigingscode="12AB00", dossier_ref="hv-1",
                                contact_staff_ref="emp-2"))
    departed = only_event(run(state, report(kind="staff_departed", vestigingscode="12AB00", staff_ref="emp-2")))
    after = evolve(state, departed)
    (reaction,) = react(after, departed)
    assert isinstance(reaction, e.DossierContactAssigned) and reaction.reason == "contact departed"
    assert reaction.contact_staff_id == staff_id(BRANCH, "emp-1")

    ib_er_leaves = only_event(run(state, report(kind="staff_departed", vestigingscode="12AB00", staff_ref="emp-1")))
    assert react(evolve(state, ib_er_leaves), ib_er_leaves) == (), "emp-1 is no contact person any more"
    without_ib_er = evolve(state, ib_er_leaves)
    departed = only_event(run(without_ib_er, report(kind="staff_departed", vestigingscode="12AB00",
                                                    staff_ref="emp-2")))
    (flag,) = react(evolve(without_ib_er, departed), departed)
    assert isinstance(flag, e.ContactPersonMissing)
    assert flag.previous_contact_staff_id == staff_id(BRANCH, "emp-2") and flag.dossier_id == dossier_id(BRANCH, "hv-1")
