"""Replay equals live, per service (access, registry, retention, auth), for generated histories
(hypothesis): the tables a processor builds event by event hold exactly the state that a fold of
the same log gives. Both run from the domain's one dispatch table; this proves nothing slipped
beside it (a purge or a wijknetwerk change applied by hand-written SQL live, say). A real SQLite
database per history; no broker: what crosses the broker is tested over the broker elsewhere."""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from functools import reduce
from pathlib import Path

import pyotp
import pytest
from argon2 import PasswordHasher
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import select
from sqlalchemy.engine import Engine

from services.access import domain as access_domain
from services.access import store as access_store
from services.access.service import AccessService
from services.auth import domain as auth_domain
from services.auth import projection as auth_projection
from services.auth import store as auth_store
from services.auth.service import AuthService
from services.registry import domain as registry_domain
from services.registry import store as registry_store
from services.registry.credentials import Credential
from services.registry.handlers import apply_retention_event
from services.registry.service import MutationProblem, RegistryService
from services.retention import domain as retention_domain
from services.retention import store as retention_store
from services.retention.service import RetentionService
from shared.clock import ManualClock
from shared.contracts import events as e
from shared.contracts import mutations as m
from shared.contracts.envelope import EventCodec, RecordedEvent
from shared.crypto import InMemoryKeyStore
from shared.db import make_engine

START = datetime(2026, 8, 1, 8, 0, tzinfo=UTC)
BRANCHES = [uuid.UUID(int=0xB0 + n) for n in range(2)]
STAFF = [uuid.UUID(int=0x50 + n) for n in range(4)]
CONSULTANT = uuid.UUID(int=0xC0)
PUPILS = [uuid.UUID(int=0x90 + n) for n in range(2)]
DOSSIERS = [uuid.UUID(int=0xD0 + n) for n in range(3)]
WIJKNETWERKEN = ["Noord", "Zuid"]
ADDRESS = e.Address(street="Schiekade", house_number="12", postcode="3032 AJ", city="Rotterdam")
ROLES = list(e.StaffRole)
HISTORY_SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

branches, staff_ids, dossier_ids = st.sampled_from(BRANCHES), st.sampled_from(STAFF), st.sampled_from(DOSSIERS)
roles = st.sampled_from(ROLES)
school_roles = st.sampled_from([r for r in ROLES if r is not e.StaffRole.SWV_CONSULTANT])
untils = st.none() | st.integers(1, 30).map(lambda days: date(2026, 8, 1) + timedelta(days=days))

ACCESS_EVENTS = st.one_of(
    st.builds(lambda b, w: e.BranchFounded(branch_id=b, vestigingscode="12AB00", name="OBS De Regenboog",
                                           address=ADDRESS, phone="+31101234567", wijknetwerk=w),
              branches, st.sampled_from(WIJKNETWERKEN)),
    st.builds(lambda b, w: e.BranchWijknetwerkChanged(branch_id=b, vestigingscode="12AB00", wijknetwerk=w),
              branches, st.sampled_from(WIJKNETWERKEN)),
    st.builds(lambda b, s, r, u: e.StaffJoined(branch_id=b, staff_id=s, role=r, name="N", email="n@school.example",
                                               access_until=u), branches, staff_ids, roles, untils),
    st.builds(lambda b, s, r, u: e.StaffRoleChanged(branch_id=b, staff_id=s, previous_role=e.StaffRole.LEERKRACHT,
                                                    role=r, access_until=u), branches, staff_ids, roles, untils),
    st.builds(lambda b, s: e.StaffDeparted(branch_id=b, staff_id=s), branches, staff_ids),
    st.builds(lambda w: e.ConsultantJoined(staff_id=CONSULTANT, name="C", email="c@swv.example", wijknetwerken=w),
              st.lists(st.sampled_from(WIJKNETWERKEN), min_size=1, max_size=2, unique=True)),
    st.just(e.ConsultantDeparted(staff_id=CONSULTANT)),
    st.builds(lambda b, d, p, s: e.DossierOpened(branch_id=b, dossier_id=d, pupil_id=p, contact_staff_id=s,
                                                 summary="hulpvraag"),
              branches, dossier_ids, st.sampled_from(PUPILS), staff_ids),
    st.builds(lambda b, d, s: e.DossierContactAssigned(branch_id=b, dossier_id=d, contact_staff_id=s,
                                                       reason="reported"), branches, dossier_ids, staff_ids),
    st.builds(lambda b, d: e.DossierClosed(branch_id=b, dossier_id=d), branches, dossier_ids),
    st.builds(lambda s, d, days: e.AccessGranted(staff_id=s, dossier_id=d, rule=access_domain.RULE_EXPLICIT,
                                                 until=START + timedelta(days=days) if days else None),
              staff_ids, dossier_ids, st.integers(0, 60)),
    st.builds(lambda s, d: e.AccessRevoked(staff_id=s, dossier_id=d, rule=access_domain.RULE_EXPLICIT,
                                           reason="revoked by IB'er or director"), staff_ids, dossier_ids),
    st.builds(lambda p: e.PupilDataPurged(pupil_id=p, key_id=f"pupil/{p}"), st.sampled_from(PUPILS)),
    st.builds(lambda b, d, s: e.ContactPersonMissing(branch_id=b, dossier_id=d, previous_contact_staff_id=s),
              branches, dossier_ids, staff_ids),
    st.builds(lambda s, d: e.DossierViewed(staff_id=s, dossier_id=d, branch_id=BRANCHES[0], allowed=True,
                                           rule="contact-person", viewed_at=START, previous_hash=None,
                                           entry_hash="0" * 64), staff_ids, dossier_ids),
    st.builds(lambda s, d: e.DossierViewed(staff_id=s, dossier_id=d, branch_id=BRANCHES[0], allowed=False,
                                           rule="view-only", viewed_at=START, previous_hash=None,
                                           entry_hash="0" * 64, action="change", what="text"), staff_ids, dossier_ids),
    st.builds(lambda s, v, signed, days: e.ConfidentialityAgreementRecorded(
        staff_id=s, branch_id=BRANCHES[0], version=v, signed_on=date(2026, 7, 20) + timedelta(days=signed),
        valid_until=date(2026, 8, 1) + timedelta(days=days)),
        staff_ids, st.sampled_from(["v1", "v2"]), st.integers(0, 20), st.integers(0, 30)),
    st.builds(lambda s, v: e.ConfidentialityAgreementRevoked(staff_id=s, branch_id=BRANCHES[0], version=v,
                                                            reason="revoked by IB'er or director"),
              staff_ids, st.sampled_from(["v1", "v2"])),
)
HISTORIES = st.lists(st.tuples(ACCESS_EVENTS, st.integers(0, 3 * 24 * 60)), min_size=1, max_size=40)


@pytest.fixture(scope="module")
def migrated_access(tmp_path_factory) -> Path:
    """One migrated database, copied for every history (migrating costs more than a history)."""
    path = tmp_path_factory.mktemp("access-template") / "access.sqlite"
    access_store.migrate_to_newest(f"sqlite:///{path}")
    return path


@pytest.fixture
def fresh_database(migrated_access, tmp_path) -> Iterator[Callable[[], str]]:
    counter = iter(range(10**6))

    def make() -> str:
        path = tmp_path / f"access-{next(counter)}.sqlite"
        shutil.copyfile(migrated_access, path)
        return f"sqlite:///{path}"
    yield make


def copy_of(template: Path, directory: Path) -> Engine:
    """A database of its own for one history, copied from a migrated one (migrating costs more
    than a history)."""
    path = directory / f"{template.stem}-{uuid.uuid4()}.sqlite"
    shutil.copyfile(template, path)
    return make_engine(f"sqlite:///{path}")


def _recorded(codec: EventCodec, event: e.Event, at: datetime, n: int) -> RecordedEvent:
    encoded = codec.encode(event, event_id=f"generated-{n}", recorded_at=at, effective_at=at, correlation_id="c")
    return codec.decode(encoded.value)


# Externs' and interns' agreements with their renewals and revocations: in the mixed histories
# above a revocation rarely meets the agreement it revokes, so these get histories of their own.
AGREEMENT_STAFF = st.sampled_from(STAFF[:1])
AGREEMENT_EVENTS = st.one_of(
    st.builds(lambda s, r: e.StaffJoined(branch_id=BRANCHES[0], staff_id=s, role=r, name="N", email="n@school.example",
                                         access_until=date(2026, 9, 1)),
              AGREEMENT_STAFF, st.sampled_from([e.StaffRole.STAGIAIR, e.StaffRole.EXTERN])),
    st.builds(lambda s, v, signed, days: e.ConfidentialityAgreementRecorded(
        staff_id=s, branch_id=BRANCHES[0], version=v, signed_on=date(2026, 7, 20) + timedelta(days=signed),
        valid_until=date(2026, 8, 1) + timedelta(days=days)),
        AGREEMENT_STAFF, st.sampled_from(["v1", "v2"]), st.integers(0, 20), st.integers(0, 30)),
    st.builds(lambda s, v: e.ConfidentialityAgreementRevoked(staff_id=s, branch_id=BRANCHES[0], version=v,
                                                            reason="revoked by IB'er or director"),
              AGREEMENT_STAFF, st.sampled_from(["v1", "v2"])),
    st.builds(lambda s: e.StaffDeparted(branch_id=BRANCHES[0], staff_id=s), AGREEMENT_STAFF),
)
AGREEMENT_HISTORIES = st.lists(st.tuples(AGREEMENT_EVENTS, st.integers(0, 3 * 24 * 60)), min_size=1, max_size=20)


@given(history=HISTORIES)
@HISTORY_SETTINGS
def test_access_tables_equal_the_replayed_fold(fresh_database, history) -> None:
    _live_equals_replay(fresh_database, history)


@given(history=AGREEMENT_HISTORIES)
@settings(HISTORY_SETTINGS, max_examples=60)
def test_access_tables_equal_the_replayed_fold_of_agreements(fresh_database, history) -> None:
    _live_equals_replay(fresh_database, history)


def _live_equals_replay(fresh_database: Callable[[], str], history: list[tuple[e.Event, int]]) -> None:
    keys, clock = InMemoryKeyStore(), ManualClock(START)
    codec = EventCodec(keys, source="/test")
    service = AccessService(codec, clock, kindkans_url="https://kindkans.example", mail_domain="samenveilig.test")
    engine = make_engine(fresh_database())
    at, log, published = START, [], 0
    # The log as the processor sees it: each generated event, then (as on access.events.v1) the
    # reactions it emitted, which the processor reads back and applies like any other event.
    pending = [_recorded(codec, event, at := at + timedelta(minutes=minutes), n)
               for n, (event, minutes) in enumerate(history)]
    while pending:
        recorded = pending.pop(0)
        if recorded.effective_at > clock.now():
            clock.advance(recorded.effective_at - clock.now())
        with engine.begin() as connection:
            service.apply(recorded, connection)
            rows = connection.execute(select(access_store.outbox.c.value).order_by(access_store.outbox.c.seq)
                                      .offset(published)).all()
            live = access_store.load_state(connection)
        published += len(rows)
        pending[:0] = [codec.decode(row.value) for row in rows]
        log.append(recorded)
        replayed = reduce(access_domain.evolve, log, access_domain.INITIAL_STATE)
        assert live == replayed, f"after {len(log)} events, the last {recorded.type}"
    engine.dispose()


# --- registry: mutations reported through the service, purges from retention ---------------

SCHOOL = Credential(client_id="school", name="OBS", brins=frozenset({"12AB"}), wijknetwerken=frozenset(),
                    signing_key=b"k" * 32)
SWV_OFFICE = Credential(client_id="swv", name="SWV", brins=frozenset(), wijknetwerken=frozenset(WIJKNETWERKEN),
                        signing_key=b"s" * 32)
CODES = ["12AB00", "12AB01"]
codes, staff_refs = st.sampled_from(CODES), st.sampled_from(["s1", "s2", "s3"])
pupil_refs = st.sampled_from(["p1", "p2"])
dossier_refs = st.sampled_from(["d1", "d2"])


def _branch(change: m.BranchChange, code: str, new_code: str, wijknetwerk: str, name: str) -> dict:
    return {"kind": "branch", "change": change.value, "vestigingscode": code,
            "new_vestigingscode": new_code if change is m.BranchChange.BRIN_CHANGED else None, "name": name,
            "address": ADDRESS.model_dump(), "phone": "+31101234567", "wijknetwerk": wijknetwerk}


def _until(role: e.StaffRole) -> str | None:
    """Externals and interns need an end date; nobody else may have one."""
    return "2026-09-01" if role in (e.StaffRole.EXTERN, e.StaffRole.STAGIAIR) else None


REPORTS = st.one_of(
    st.builds(_branch, st.sampled_from(list(m.BranchChange)), codes, codes, st.sampled_from(WIJKNETWERKEN),
              st.sampled_from(["De Regenboog", "De Vlinder"])),
    st.builds(lambda c, s, r: {"kind": "staff_joined", "vestigingscode": c, "staff_ref": s, "role": r.value,
                               "name": "N", "email": "n@school.example", "access_until": _until(r)},
              codes, staff_refs, school_roles),
    st.builds(lambda c, s, r: {"kind": "staff_role_changed", "vestigingscode": c, "staff_ref": s, "role": r.value,
                               "access_until": _until(r)}, codes, staff_refs, school_roles),
    st.builds(lambda c, s: {"kind": "staff_departed", "vestigingscode": c, "staff_ref": s}, codes, staff_refs),
    st.builds(lambda w: {"kind": "consultant_joined", "consultant_ref": "c1", "name": "C", "email": "c@swv.example",
                         "wijknetwerken": w}, st.lists(st.sampled_from(WIJKNETWERKEN), min_size=1, unique=True)),
    st.just({"kind": "consultant_departed", "consultant_ref": "c1"}),
    st.builds(lambda c, p: {"kind": "pupil_enrolled", "vestigingscode": c, "pupil_ref": p, "name": "Kind",
                            "date_of_birth": "2016-03-01", "parent_emails": ["ouder@thuis.example"]},
              codes, pupil_refs),
    st.builds(lambda c, p: {"kind": "pupil_left", "vestigingscode": c, "pupil_ref": p, "left_on": "2026-08-01"},
              codes, pupil_refs),
    st.builds(lambda c, d, p, s: {"kind": "dossier_opened", "vestigingscode": c, "dossier_ref": d, "pupil_ref": p,
                                  "contact_staff_ref": s, "summary": "hulpvraag"}, codes, dossier_refs, pupil_refs,
              staff_refs),
    st.builds(lambda c, d, s: {"kind": "dossier_contact_assigned", "vestigingscode": c, "dossier_ref": d,
                               "contact_staff_ref": s}, codes, dossier_refs, staff_refs),
    st.builds(lambda c, d: {"kind": "dossier_closed", "vestigingscode": c, "dossier_ref": d}, codes, dossier_refs),
    st.builds(lambda c, p: {"kind": "purge", "vestigingscode": c, "pupil_ref": p}, codes, pupil_refs),
)
MUTATION = TypeAdapter(m.Mutation)


@pytest.fixture(scope="module")
def migrated_registry(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("registry-template") / "registry.sqlite"
    registry_store.migrate_to_newest(f"sqlite:///{path}")
    return path


@given(reports=st.lists(st.tuples(REPORTS, st.integers(0, 24 * 60)), min_size=1, max_size=40))
@HISTORY_SETTINGS
def test_registry_tables_equal_the_replayed_fold(migrated_registry, tmp_path, reports) -> None:
    engine = copy_of(migrated_registry, tmp_path)
    clock = ManualClock(START)
    codec = EventCodec(InMemoryKeyStore(), source="/test")
    service = RegistryService(codec, clock, office_email="kindkansteam@swv.example", mail_domain="samenveilig.test")
    log: list[e.Event] = []
    published = 0
    # Both branches founded first: most generated mutations then find their school.
    founding = [(_branch(m.BranchChange.FOUNDED, code, code, "Noord", "De Regenboog"), 0) for code in CODES]
    for n, (report, minutes) in enumerate(founding + reports):
        clock.advance(timedelta(minutes=minutes))
        with engine.begin() as connection:
            if report["kind"] == "purge":
                branch_id = registry_store.branch_id_for(connection, report["vestigingscode"])
                if branch_id is None:
                    continue
                pupil = registry_domain.pupil_id(branch_id, report["pupil_ref"])
                purge = e.PupilDataPurged(pupil_id=pupil, key_id=f"pupil/{pupil}")
                apply_retention_event(_recorded(codec, purge, clock.now(), n), connection)
                log.append(purge)
            else:
                try:
                    mutation = MUTATION.validate_python({"mutation_id": f"m{n}", **report})
                except ValidationError:
                    continue  # refused at the door (a 422 or a DLQ entry): never reaches the service
                credential = SWV_OFFICE if report["kind"].startswith("consultant") else SCHOOL
                with contextlib.suppress(MutationProblem):  # refused: no event, no change
                    service.report(connection, credential, [mutation])
            rows = connection.execute(select(registry_store.outbox.c.value).order_by(registry_store.outbox.c.seq)
                                      .offset(published)).all()
            live = registry_store.load_all(connection)
        published += len(rows)
        log += [codec.decode(row.value).event for row in rows]
        replayed = reduce(registry_domain.evolve, log, registry_domain.INITIAL_STATE)
        assert live == replayed, f"after {report['kind']} (step {n})"
    engine.dispose()


# --- retention: registry events it follows, holds and consents from its API, purges when due ---

RETENTION_PUPILS = [uuid.UUID(int=0x9A0 + n) for n in range(3)]
retention_pupils = st.sampled_from(RETENTION_PUPILS)
RETENTION_STEPS = st.one_of(
    st.builds(lambda p, b, born: ("registry", e.PupilEnrolled(branch_id=b, pupil_id=p, name="Kind",
                                                              date_of_birth=born,
                                                              parent_emails=["ouder@thuis.example"])),
              retention_pupils, branches, st.dates(date(2008, 1, 1), date(2020, 12, 31))),
    st.builds(lambda p, b, d: ("registry", e.DossierOpened(branch_id=b, dossier_id=d, pupil_id=p,
                                                           contact_staff_id=STAFF[0], summary="hulpvraag")),
              retention_pupils, branches, dossier_ids),
    st.builds(lambda p, b, days: ("registry", e.PupilLeft(branch_id=b, pupil_id=p,
                                                          left_on=date(2026, 7, 1) + timedelta(days=days))),
              retention_pupils, branches, st.integers(0, 400)),
    st.builds(lambda p, reason: ("hold", p, reason), retention_pupils, st.none() | st.just("lopende procedure")),
    st.builds(lambda p, purpose, giver, given: ("consent", p, purpose, giver, given), retention_pupils,
              st.sampled_from(list(e.ConsentPurpose)), st.sampled_from(list(e.ConsentGiver)), st.booleans()),
    st.builds(lambda days: ("time passes", days), st.integers(1, 4 * 365)),
)


@pytest.fixture(scope="module")
def migrated_retention(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("retention-template") / "retention.sqlite"
    retention_store.migrate_to_newest(f"sqlite:///{path}")
    return path


@given(steps=st.lists(RETENTION_STEPS, min_size=1, max_size=30))
@HISTORY_SETTINGS
def test_retention_tables_equal_the_replayed_fold(migrated_retention, tmp_path, steps) -> None:
    engine = copy_of(migrated_retention, tmp_path)
    keys, clock = InMemoryKeyStore(), ManualClock(START)
    codec = EventCodec(keys, source="/test")
    service = RetentionService(codec, keys, clock)
    log: list[RecordedEvent] = []
    published = 0
    for n, step in enumerate(steps):
        clock.advance(timedelta(minutes=1))
        if step[0] == "time passes":
            clock.advance(timedelta(days=step[1]))
            service.purge_due(engine)  # what the relay does each round
        else:
            with engine.begin() as connection:
                if step[0] == "registry":
                    recorded = _recorded(codec, step[1], clock.now(), n)
                    service.apply(recorded, connection)
                    log.append(recorded)
                elif step[0] == "hold":
                    service.set_hold(connection, step[1], step[2])
                else:
                    service.record_consent(connection, *step[1:])
        with engine.begin() as connection:
            rows = connection.execute(select(retention_store.outbox.c.value).order_by(retention_store.outbox.c.seq)
                                      .offset(published)).all()
            live = retention_store.load_state(connection)
        published += len(rows)
        log += [codec.decode(row.value) for row in rows]
        replayed = reduce(retention_domain.evolve, log, retention_domain.INITIAL_STATE)
        assert live == replayed, f"after step {n}: {step[0]}"
    engine.dispose()


# --- auth: registry events it follows, enrolments, logins, logouts, sessions that run out -----

AUTH_STAFF = [uuid.UUID(int=0x5A0 + n) for n in range(3)]
AUTH_PASSWORD = "een lang en goed wachtwoord"
auth_staff = st.sampled_from(AUTH_STAFF + [CONSULTANT])


def _joined(staff_id: uuid.UUID) -> e.Event:
    if staff_id == CONSULTANT:
        return e.ConsultantJoined(staff_id=staff_id, name="C", email="c@swv.example", wijknetwerken=["Noord"])
    return e.StaffJoined(branch_id=BRANCHES[0], staff_id=staff_id, role=e.StaffRole.LEERKRACHT, name="N",
                         email=f"s{staff_id.int:x}@school.example", access_until=None)


def _departed(staff_id: uuid.UUID) -> e.Event:
    if staff_id == CONSULTANT:
        return e.ConsultantDeparted(staff_id=staff_id)
    return e.StaffDeparted(branch_id=BRANCHES[0], staff_id=staff_id)


AUTH_STEPS = st.one_of(
    st.builds(lambda s: ("registry", _joined(s)), auth_staff),
    st.builds(lambda s: ("registry", _departed(s)), auth_staff),
    st.builds(lambda s: ("enrol", s), auth_staff),
    st.builds(lambda s, factor: ("login", s, factor), auth_staff, st.sampled_from(["totp", "totp", "recovery-code"])),
    st.builds(lambda s: ("login", s, "totp"), auth_staff),
    st.builds(lambda n: ("logout", n), st.integers(0, 5)),
    st.builds(lambda minutes: ("time passes", minutes), st.sampled_from([5, 31, 13 * 60])),
)


@pytest.fixture(scope="module")
def migrated_auth(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("auth-template") / "auth.sqlite"
    auth_store.migrate_to_newest(f"sqlite:///{path}")
    return path


class AuthUser:
    """What a staff member holds: the invitation from their mail, their app's secret, recovery codes."""

    def __init__(self) -> None:
        self.secret: str | None = None
        self.recovery_codes: list[str] = []


@given(steps=st.lists(AUTH_STEPS, min_size=1, max_size=30))
@HISTORY_SETTINGS
def test_auth_tables_equal_the_replayed_fold(migrated_auth, tmp_path, steps) -> None:
    engine = copy_of(migrated_auth, tmp_path)
    clock = ManualClock(START)
    codec = EventCodec(InMemoryKeyStore(), source="/test")
    service = AuthService(codec, clock, b"m" * 32, PasswordHasher(time_cost=1, memory_cost=64, parallelism=1),
                          "https://login.example", "samenveilig.test")
    users: dict[str, AuthUser] = {}
    sessions: list[str] = []  # the session tokens handed out, in order
    log: list[RecordedEvent] = []
    published = 0
    # Everybody joined and enrolled first: most generated steps then find an account to act on.
    prologue = [("registry", _joined(s)) for s in AUTH_STAFF + [CONSULTANT]] + [("enrol", s) for s in AUTH_STAFF]
    for n, step in enumerate(prologue + steps):
        clock.advance(timedelta(minutes=1))  # a new TOTP step every time: a code is never a replay
        with engine.begin() as connection:
            if step[0] == "registry":
                service.apply(_recorded(codec, step[1], clock.now(), n), connection)
            elif step[0] == "enrol":
                invitation = _invitation_in_mail(connection, step[1])
                enrolment = service.set_password(connection, invitation, AUTH_PASSWORD)[0] if invitation else None
                started = service.start_enrolment(connection, enrolment) if enrolment else None
                if started:
                    codes = service.finish_enrolment(connection, enrolment, pyotp.TOTP(started.secret).at(clock.now()))
                    users[str(step[1])] = user = AuthUser()
                    user.secret, user.recovery_codes = started.secret, codes or []
            elif step[0] == "login":
                user = users.get(str(step[1]))
                answer = service.login_password(connection, str(_joined(step[1]).email), AUTH_PASSWORD, "10.0.0.1")
                if answer.ok and user and user.secret:
                    code = (user.recovery_codes.pop() if step[2] == "recovery-code" and user.recovery_codes
                            else pyotp.TOTP(user.secret).at(clock.now()))
                    session = service.login_code(connection, answer.token, code, "10.0.0.1")
                    if session.ok:
                        sessions.append(session.token)
            elif step[0] == "logout":
                if sessions:
                    service.logout(connection, sessions[step[1] % len(sessions)])
            else:
                clock.advance(timedelta(minutes=step[1]))
                for token in sessions:  # what Kindkans asks on each request: ends idle and expired sessions
                    service.introspect(connection, token)
        with engine.begin() as connection:
            rows = connection.execute(select(auth_store.outbox.c.value).order_by(auth_store.outbox.c.seq)
                                      .offset(published)).all()
            live = auth_store.load_facts(connection)
        published += len(rows)
        log += [codec.decode(row.value) for row in rows]
        replayed = reduce(auth_domain.evolve, log, auth_domain.INITIAL_STATE)
        assert auth_projection.of_state(live) == auth_projection.of_state(replayed), f"after step {n}: {step[0]}"
    engine.dispose()


def _invitation_in_mail(connection, staff_id: uuid.UUID) -> str | None:
    """The link in the newest invitation mailed to the staff member."""
    address = str(_joined(staff_id).email)
    row = connection.execute(select(auth_store.mail_outbox.c.body).where(auth_store.mail_outbox.c.recipient == address)
                             .order_by(auth_store.mail_outbox.c.id.desc())).first()
    return row.body.split("/uitnodiging/")[1].split()[0] if row else None
