"""The domain events the benchmarks feed, from one generator: single events (a branch, a staff
member, a dossier, a pupil, a registry mutation) and `SchoolYear`, a seeded, realistic year of
registry and access events (branches, staff of every role with role changes and late-reported
departures, SWV consultants, dossiers, explicit grants, the access service's reactions and
hash-chained views), optionally with enrolled pupils and their parents' addresses."""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from services.access.domain import BRANCH_RULES, RULE_CONTACT, RULE_EXPLICIT, RULE_SWV
from shared.contracts.events import (
    AccessGranted,
    AccessRevoked,
    Address,
    BranchFounded,
    ConsultantDeparted,
    ConsultantJoined,
    DossierClosed,
    DossierContactAssigned,
    DossierOpened,
    DossierViewed,
    Event,
    NotificationsStopped,
    PupilEnrolled,
    PupilLeft,
    StaffDeparted,
    StaffJoined,
    StaffRole,
    StaffRoleChanged,
    view_entry_hash,
)

WIJKNETWERKEN = ["Centrum", "Charlois", "Delfshaven", "Feijenoord", "Hillegersberg-Schiebroek",
                 "IJsselmonde", "Kralingen-Crooswijk", "Noord", "Overschie", "Prins Alexander"]
ADDRESS = Address(street="Schiekade", house_number="12", postcode="3032 AJ", city="Rotterdam")
DOSSIER_SUMMARY = "Zorgen over lezen en concentratie in de klas."
YEAR_START = datetime(2025, 8, 1, 6, 0, tzinfo=UTC)
YEAR_END = datetime(2026, 7, 17, 16, 0, tzinfo=UTC)
MID_YEAR = datetime(2026, 2, 2, 10, 0, tzinfo=UTC)
SCHOOL_START = datetime(2025, 8, 18, 7, 0, tzinfo=UTC)
MAX_BRANCHES = 200
# Pupils (SchoolYear(pupils=True)).
PUPILS_PER_BRANCH = (150, 250)
TWO_PARENTS = 0.6  # share of pupils with two parent addresses
SIBLINGS = 0.08  # share of pupils whose parents' addresses are an earlier pupil's of the branch
SECOND_DOSSIER = 0.1  # share of dossiers that belong to a pupil who already has one
PUPILS_LEAVING = 0.03  # share of pupils without a dossier who leave during the year


# --- single events ---------------------------------------------------------------------------

def vestigingscode(i: int) -> str:
    return f"{10 + i // 26 % 90:02d}{chr(65 + i % 26)}{chr(65 + i // 26 % 26)}00"


def branch_founded(branch_id: UUID, i: int = 0) -> BranchFounded:
    return BranchFounded(branch_id=branch_id, vestigingscode=vestigingscode(i), name=f"Basisschool {i}",
                         address=ADDRESS, phone="+31101234567", wijknetwerk=WIJKNETWERKEN[i % len(WIJKNETWERKEN)])


def staff_joined(branch_id: UUID, i: int, role: StaffRole = StaffRole.IB_ER, staff_id: UUID | None = None,
                 **extra: Any) -> StaffJoined:
    return StaffJoined(branch_id=branch_id, staff_id=staff_id or uuid.uuid4(), role=role, name=f"Medewerker {i}",
                       email=f"m{i}@school.example", **extra)


def dossier_opened(branch_id: UUID, contact: UUID, dossier_id: UUID | None = None, pupil_id: UUID | None = None,
                   summary: str = DOSSIER_SUMMARY) -> DossierOpened:
    return DossierOpened(branch_id=branch_id, dossier_id=dossier_id or uuid.uuid4(), pupil_id=pupil_id or uuid.uuid4(),
                         contact_staff_id=contact, summary=summary)


def pupil_enrolled(branch_id: UUID, number: int, parent_emails: list[str] | None = None,
                   date_of_birth: date = date(2015, 3, 1), pupil_id: UUID | None = None) -> PupilEnrolled:
    return PupilEnrolled(branch_id=branch_id, pupil_id=pupil_id or uuid.uuid4(), name=f"Leerling {number}",
                         date_of_birth=date_of_birth, parent_emails=parent_emails or [f"ouder{number}a@example.nl"])


def staff_joined_mutation(phase: str, i: int, code: str) -> dict[str, Any]:
    """What a school system reports to the registry for a new staff member (refs and ids distinct
    per phase and i)."""
    ref = f"{phase}-{i:06d}"
    return {"kind": "staff_joined", "mutation_id": ref, "vestigingscode": code, "staff_ref": ref, "role": "ib_er",
            "name": f"Medewerker {i}", "email": f"m{i}@regenboog.example"}


# --- a school year ---------------------------------------------------------------------------

@dataclass
class Person:
    staff_id: UUID
    branch: int | None  # None: an SWV consultant
    role: StaffRole
    joined: datetime
    access_until: date | None = None
    new_role: tuple[datetime, StaffRole] | None = None
    departed: datetime | None = None  # effective
    departure_recorded: datetime | None = None
    wijknetwerken: tuple[str, ...] = ()

    def role_at(self, at: datetime) -> StaffRole:
        if self.new_role is not None and self.new_role[0] <= at:
            return self.new_role[1]
        return self.role

    def present(self, at: datetime) -> bool:
        return self.joined <= at and (self.departed is None or at < self.departed)


@dataclass
class PlannedDossier:
    dossier_id: UUID
    branch: int
    opened: datetime
    closed: datetime | None
    contacts: list[tuple[datetime, UUID]] = field(default_factory=list)


@dataclass(frozen=True)
class Planned:
    """One event of the history: when it was recorded (log order) and when it takes effect."""

    recorded: datetime
    seq: int
    effective: datetime
    event: Event


class SchoolYear:
    """A seeded year of N registry and access events: one branch per `events_per_branch` events (at
    most MAX_BRANCHES), spread over the 10 wijknetwerken. The structural events are planned up
    front; the rest are DossierViewed, generated in time order and merged in, each by someone the
    access service would have let in as far as it knew then (5% a teacher who is denied). With
    `pupils`, every branch also enrols 150-250 pupils (the dossiers' pupils first), some of whom
    leave, and one dossier in ten belongs to a pupil who already has one."""

    def __init__(self, n: int, seed: int, events_per_branch: int = 500, pupils: bool = False) -> None:
        self.n = n
        self.rng = random.Random(seed)
        self.branch_count = max(1, min(MAX_BRANCHES, n // events_per_branch))
        self.branch_ids: list[UUID] = []
        self.branch_wijk: list[str] = []
        self.people: list[Person] = []
        self.consultants: list[Person] = []
        self.dossiers: list[PlannedDossier] = []
        self.grants: list[tuple[UUID, UUID]] = []
        self.planned: list[Planned] = []
        self.pupil_emails: dict[UUID, list[str]] = {}
        self.pupil_branch: dict[UUID, int] = {}
        self.dossier_pupil: dict[UUID, UUID] = {}
        self.dossier_branch: dict[UUID, int] = {}
        self.pupils_left = 0
        self._seq = 0
        self._plan()
        if pupils:
            self._plan_pupils()
            self.planned.sort(key=lambda p: (p.recorded, p.seq))
        self.views = n - len(self.planned)
        if self.views < 0:
            raise ValueError(f"{n} events are too few for {self.branch_count} branches")

    # helpers
    def uid(self) -> UUID:
        return UUID(int=self.rng.getrandbits(128), version=4)

    def between(self, start: datetime, end: datetime) -> datetime:
        seconds = max(0.0, (end - start).total_seconds())
        return (start + timedelta(seconds=int(self.rng.random() * seconds))).replace(microsecond=0)

    def add(self, event: Event, recorded: datetime, effective: datetime | None = None) -> None:
        self._seq += 1
        self.planned.append(Planned(recorded, self._seq, effective or recorded, event))

    def summary(self) -> dict[str, Any]:
        return {"branches": self.branch_count, "wijknetwerken": len(set(self.branch_wijk)), "staff": len(self.people),
                "consultants": len(self.consultants), "dossiers": len(self.dossiers),
                "explicit_grants": len(self.grants), "departures": sum(1 for p in self.people if p.departed),
                "late_reports": sum(1 for p in self.people if p.departed and p.departure_recorded != p.departed),
                "views": self.views}

    # planning
    def _plan(self) -> None:
        rng = self.rng
        for i in range(self.branch_count):
            branch_id = self.uid()
            self.branch_ids.append(branch_id)
            self.branch_wijk.append(WIJKNETWERKEN[i % len(WIJKNETWERKEN)])
            self.add(branch_founded(branch_id, i), YEAR_START + timedelta(minutes=i))
        by_branch: list[list[Person]] = [[] for _ in range(self.branch_count)]
        for b in range(self.branch_count):
            roles = ([StaffRole.IB_ER] * rng.randint(1, 2) + [StaffRole.DIRECTEUR, StaffRole.ADMINISTRATOR]
                     + [StaffRole.EXTERN] * rng.randint(1, 3) + [StaffRole.STAGIAIR] * rng.randint(0, 2)
                     + [StaffRole.LEERKRACHT] * rng.randint(12, 20))
            for role in roles:
                if role in (StaffRole.EXTERN, StaffRole.STAGIAIR):
                    joined = self.between(datetime(2025, 9, 1, 7, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC))
                    days = rng.randint(60, 200) if role is StaffRole.EXTERN else rng.randint(90, 150)
                    until = min((joined + timedelta(days=days)).date(), YEAR_END.date())
                    person = Person(self.uid(), b, role, joined, access_until=until)
                else:
                    joined = (self.between(SCHOOL_START, SCHOOL_START + timedelta(days=11)) if rng.random() < 0.9
                              else self.between(datetime(2025, 9, 1, tzinfo=UTC), datetime(2026, 5, 31, tzinfo=UTC)))
                    person = Person(self.uid(), b, role, joined)
                    if role is StaffRole.LEERKRACHT and rng.random() < 0.02:
                        person.new_role = (self.between(joined + timedelta(days=14), datetime(2026, 6, 1, tzinfo=UTC)),
                                           StaffRole.IB_ER)
                    elif role is StaffRole.IB_ER and rng.random() < 0.05:
                        person.new_role = (self.between(joined + timedelta(days=14), datetime(2026, 6, 1, tzinfo=UTC)),
                                           StaffRole.LEERKRACHT)
                    if rng.random() < 0.05:
                        earliest = max(joined, person.new_role[0] if person.new_role else joined) + timedelta(days=20)
                        if earliest < YEAR_END - timedelta(days=30):
                            person.departed = self.between(earliest, YEAR_END - timedelta(days=21))
                            late = rng.random() < 0.3  # reported late, as in the audit test
                            person.departure_recorded = (person.departed + timedelta(hours=rng.randint(24, 21 * 24))
                                                         if late else person.departed)
                self.people.append(person)
                by_branch[b].append(person)
        consultants = max(1, len(self.people) // 500)
        for c in range(consultants):
            wijks = tuple(sorted({WIJKNETWERKEN[c % len(WIJKNETWERKEN)],
                                  *(rng.sample(WIJKNETWERKEN, 1) if rng.random() < 0.5 else [])}))
            person = Person(self.uid(), None, StaffRole.SWV_CONSULTANT,
                            datetime(2025, 8, 25, 8, tzinfo=UTC) + timedelta(minutes=c), wijknetwerken=wijks)
            if c == 0 and consultants >= 4:
                person.departed = person.departure_recorded = datetime(2026, 3, 2, 9, tzinfo=UTC)
            self.consultants.append(person)
        self._plan_staff_events()
        self._plan_dossiers(by_branch)
        self._plan_grants(by_branch)
        self._plan_departures()
        self.planned.sort(key=lambda p: (p.recorded, p.seq))

    def _plan_staff_events(self) -> None:
        for n, person in enumerate(self.people):
            branch_id = self.branch_ids[person.branch]  # type: ignore[index]
            self.add(staff_joined(branch_id, n, person.role, person.staff_id, access_until=person.access_until),
                     person.joined)
            if person.role in BRANCH_RULES:  # the access service's reaction
                self.add(AccessGranted(staff_id=person.staff_id, branch_id=branch_id,
                                       rule=BRANCH_RULES[person.role]), person.joined + timedelta(seconds=1))
            if person.new_role is not None:
                at, role = person.new_role
                self.add(StaffRoleChanged(branch_id=branch_id, staff_id=person.staff_id, previous_role=person.role,
                                          role=role), at)
                if person.role in BRANCH_RULES:
                    self.add(AccessRevoked(staff_id=person.staff_id, branch_id=branch_id,
                                           rule=BRANCH_RULES[person.role], reason="role changed"),
                             at + timedelta(seconds=1))
                if role in BRANCH_RULES:
                    self.add(AccessGranted(staff_id=person.staff_id, branch_id=branch_id, rule=BRANCH_RULES[role]),
                             at + timedelta(seconds=1))
        for n, person in enumerate(self.consultants):
            self.add(ConsultantJoined(staff_id=person.staff_id, name=f"Consulent {n}", email=f"c{n}@swv.example",
                                      wijknetwerken=list(person.wijknetwerken)), person.joined)
            self.add(AccessGranted(staff_id=person.staff_id, rule=RULE_SWV), person.joined + timedelta(seconds=1))
            if person.departed is not None:
                self.add(ConsultantDeparted(staff_id=person.staff_id), person.departed)
                self.add(AccessRevoked(staff_id=person.staff_id, rule=RULE_SWV, reason="staff departed"),
                         person.departed + timedelta(seconds=2))
                self.add(NotificationsStopped(staff_id=person.staff_id, reason="staff departed"),
                         person.departed + timedelta(seconds=2))

    def _contact_candidates(self, staff: list[Person], at: datetime) -> list[Person]:
        teachers = [p for p in staff if p.present(at) and p.role_at(at) is StaffRole.LEERKRACHT
                    and (p.departure_recorded is None or at < p.departure_recorded)]
        ib_ers = [p for p in staff if p.present(at) and p.role_at(at) is StaffRole.IB_ER]
        if teachers and (self.rng.random() < 0.85 or not ib_ers):
            return teachers
        return ib_ers or [p for p in staff if p.present(at) and p.role_at(at) is StaffRole.DIRECTEUR]

    def _plan_dossiers(self, by_branch: list[list[Person]]) -> None:
        rng = self.rng
        year_open = datetime(2025, 8, 25, 8, tzinfo=UTC)
        for b, staff in enumerate(by_branch):
            branch_id = self.branch_ids[b]
            for _ in range(rng.randint(20, 30)):
                opened = (self.between(year_open, year_open + timedelta(days=14)) if rng.random() < 0.15
                          else self.between(datetime(2025, 9, 8, tzinfo=UTC), datetime(2026, 6, 30, tzinfo=UTC)))
                candidates = self._contact_candidates(staff, opened)
                if not candidates:
                    continue
                closed = (self.between(opened + timedelta(days=14), YEAR_END - timedelta(days=1))
                          if rng.random() < 0.3 and opened + timedelta(days=15) < YEAR_END else None)
                dossier = PlannedDossier(self.uid(), b, opened, closed)
                contact = rng.choice(candidates)
                dossier.contacts.append((opened, contact.staff_id))
                self.add(dossier_opened(branch_id, contact.staff_id, dossier.dossier_id, self.uid()), opened)
                end = closed or YEAR_END
                reported = (self.between(opened + timedelta(days=7), end) if rng.random() < 0.2
                            and opened + timedelta(days=8) < end else None)
                current = contact
                # The contact person's departure (reported when it was) moves the dossier to an IB'er.
                while True:
                    gone = current.departure_recorded
                    if gone is not None and gone + timedelta(minutes=1) < end and (reported is None or gone < reported):
                        at = gone + timedelta(minutes=1)
                        successors = [p for p in staff if p.present(at) and p.role_at(at) is StaffRole.IB_ER]
                        if successors:
                            current = rng.choice(successors)
                            dossier.contacts.append((at, current.staff_id))
                            self.add(DossierContactAssigned(branch_id=branch_id, dossier_id=dossier.dossier_id,
                                                            contact_staff_id=current.staff_id,
                                                            reason="contact departed"), at)
                            continue
                    if reported is not None:
                        candidates = [p for p in self._contact_candidates(staff, reported)
                                      if p.staff_id != current.staff_id]
                        if candidates:
                            current = rng.choice(candidates)
                            dossier.contacts.append((reported, current.staff_id))
                            self.add(DossierContactAssigned(branch_id=branch_id, dossier_id=dossier.dossier_id,
                                                            contact_staff_id=current.staff_id, reason="reported"),
                                     reported)
                        reported = None
                        continue
                    break
                if closed is not None:
                    self.add(DossierClosed(branch_id=branch_id, dossier_id=dossier.dossier_id), closed)
                self.dossiers.append(dossier)

    def _plan_grants(self, by_branch: list[list[Person]]) -> None:
        rng = self.rng
        dossiers_of: list[list[PlannedDossier]] = [[] for _ in range(self.branch_count)]
        for dossier in self.dossiers:
            dossiers_of[dossier.branch].append(dossier)
        self._grant_windows: dict[UUID, list[tuple[UUID, datetime, datetime | None, datetime | None]]] = {}

        def grant(person: Person, dossier: PlannedDossier, at: datetime, until: datetime | None) -> None:
            branch_id = self.branch_ids[dossier.branch]
            self.add(AccessGranted(staff_id=person.staff_id, branch_id=branch_id, dossier_id=dossier.dossier_id,
                                   rule=RULE_EXPLICIT, until=until), at)
            revoked = None
            if rng.random() < 0.1:
                revoked = self.between(at + timedelta(hours=1), min(until or YEAR_END, YEAR_END))
                self.add(AccessRevoked(staff_id=person.staff_id, branch_id=branch_id, dossier_id=dossier.dossier_id,
                                       rule=RULE_EXPLICIT, reason="revoked by IB'er or director"), revoked)
            self.grants.append((person.staff_id, dossier.dossier_id))
            self._grant_windows.setdefault(person.staff_id, []).append((dossier.dossier_id, at, until, revoked))

        for b, staff in enumerate(by_branch):
            for person in staff:
                if person.role not in (StaffRole.EXTERN, StaffRole.STAGIAIR) or person.access_until is None:
                    continue
                access_end = datetime.combine(person.access_until, datetime.min.time(), UTC) + timedelta(days=1)
                chosen: set[UUID] = set()
                for _ in range(rng.randint(3, 8)):
                    at = self.between(person.joined, min(access_end, YEAR_END))
                    open_now = [d for d in dossiers_of[b] if d.opened < at and (d.closed is None or at < d.closed)
                                and d.dossier_id not in chosen]
                    if not open_now:
                        continue
                    dossier = rng.choice(open_now)
                    chosen.add(dossier.dossier_id)
                    grant(person, dossier, at, min(at + timedelta(days=rng.randint(30, 120)), access_end))
            for dossier in dossiers_of[b]:
                if rng.random() < 0.05:
                    end = dossier.closed or YEAR_END
                    at = self.between(dossier.opened + timedelta(hours=1), end)
                    contacts = {c for _, c in dossier.contacts}
                    teachers = [p for p in staff if p.present(at) and p.role_at(at) is StaffRole.LEERKRACHT
                                and (p.departure_recorded is None or at < p.departure_recorded)
                                and p.staff_id not in contacts]
                    if teachers:
                        until = at + timedelta(days=rng.randint(30, 90)) if rng.random() < 0.5 else None
                        grant(rng.choice(teachers), dossier, at, until)

    def _plan_departures(self) -> None:
        for person in self.people:
            if person.departed is None or person.departure_recorded is None:
                continue
            branch_id = self.branch_ids[person.branch]  # type: ignore[index]
            self.add(StaffDeparted(branch_id=branch_id, staff_id=person.staff_id), person.departure_recorded,
                     person.departed)
            # The access service's reactions, when it learns of the departure.
            reacted = person.departure_recorded + timedelta(seconds=2)
            role = person.role_at(person.departed)
            if role in BRANCH_RULES:
                self.add(AccessRevoked(staff_id=person.staff_id, branch_id=branch_id, rule=BRANCH_RULES[role],
                                       reason="staff departed"), reacted, person.departed)
            for dossier_id, at, until, revoked in self._grant_windows.get(person.staff_id, []):
                if at <= person.departed and (until is None or person.departed < until) and (
                        revoked is None or person.departed < revoked):
                    self.add(AccessRevoked(staff_id=person.staff_id, branch_id=branch_id, dossier_id=dossier_id,
                                           rule=RULE_EXPLICIT, reason="staff departed"), reacted, person.departed)
            self.add(NotificationsStopped(staff_id=person.staff_id, branch_id=branch_id, reason="staff departed"),
                     reacted, person.departed)

    def _plan_pupils(self) -> None:
        """Every dossier's pupil is enrolled (with parent addresses) before the dossier opens, and
        most pupils have no dossier at all."""
        rng = self.rng
        opened_by_branch: dict[int, list[int]] = {}
        for i, planned in enumerate(self.planned):
            if isinstance(planned.event, DossierOpened):
                branch = self.branch_ids.index(planned.event.branch_id)
                opened_by_branch.setdefault(branch, []).append(i)
        for b, branch_id in enumerate(self.branch_ids):
            pupils: list[UUID] = []
            first_seen: dict[UUID, datetime] = {}  # when each pupil's first dossier opens
            with_dossier: list[UUID] = []
            for i in sorted(opened_by_branch.get(b, []), key=lambda i: self.planned[i].recorded):
                planned = self.planned[i]
                event = planned.event
                assert isinstance(event, DossierOpened)
                pupil_id = (rng.choice(with_dossier) if with_dossier and rng.random() < SECOND_DOSSIER
                            else event.pupil_id)
                if pupil_id != event.pupil_id:
                    self.planned[i] = dataclasses.replace(planned, event=event.model_copy(
                        update={"pupil_id": pupil_id}))
                else:
                    with_dossier.append(pupil_id)
                    first_seen[pupil_id] = planned.recorded
                self.dossier_pupil[event.dossier_id] = pupil_id
                self.dossier_branch[event.dossier_id] = b
            for pupil_id in with_dossier:
                opened = first_seen[pupil_id]
                at = (self.between(SCHOOL_START - timedelta(days=3), SCHOOL_START)
                      if opened > SCHOOL_START + timedelta(days=1)
                      else opened - timedelta(days=rng.randint(1, 3)))
                self._enrol(b, pupils, pupil_id, min(at, opened - timedelta(hours=1)))
            for _ in range(max(0, rng.randint(*PUPILS_PER_BRANCH) - len(with_dossier))):
                pupil_id = self.uid()
                late = rng.random() < 0.1
                at = (self.between(datetime(2025, 9, 1, tzinfo=UTC), datetime(2026, 5, 31, tzinfo=UTC)) if late
                      else self.between(SCHOOL_START - timedelta(days=3), SCHOOL_START))
                self._enrol(b, pupils, pupil_id, at)
                if not late and rng.random() < PUPILS_LEAVING:
                    left = self.between(datetime(2025, 10, 1, tzinfo=UTC), datetime(2026, 6, 30, tzinfo=UTC))
                    self.add(PupilLeft(branch_id=branch_id, pupil_id=pupil_id, left_on=left.date()), left)
                    self.pupils_left += 1

    def _enrol(self, b: int, pupils: list[UUID], pupil_id: UUID, at: datetime) -> None:
        rng = self.rng
        number = len(self.pupil_emails) + 1
        if pupils and rng.random() < SIBLINGS:
            emails = list(self.pupil_emails[rng.choice(pupils)])
        else:
            emails = [f"ouder{number}a@example.nl"]
            if rng.random() < TWO_PARENTS:
                emails.append(f"ouder{number}b@example.nl")
        pupils.append(pupil_id)
        self.pupil_emails[pupil_id] = emails
        self.pupil_branch[pupil_id] = b
        born = date(rng.randint(2013, 2021), rng.randint(1, 12), rng.randint(1, 28))
        self.add(pupil_enrolled(self.branch_ids[b], number, emails, born, pupil_id), at)

    # the stream, in log (record-time) order
    def stream(self) -> Iterator[tuple[Event, str, datetime, datetime]]:
        """(event, event id, recorded_at, effective_at) for all N events, in the order recorded."""
        rng = self.rng
        view_times = self._view_times()
        world = _World(self)
        planned = iter(self.planned)
        upcoming = next(planned, None)
        for ts, index in view_times:
            at = datetime.fromtimestamp(ts, UTC)
            while upcoming is not None and upcoming.recorded <= at:
                world.apply(upcoming.event)
                yield upcoming.event, str(self.uid()), upcoming.recorded, upcoming.effective
                upcoming = next(planned, None)
            dossier = self.dossiers[index]
            staff_id, allowed, rule = world.viewer(dossier, at, rng)
            event_id = str(self.uid())
            previous = world.chain.get(dossier.dossier_id)
            entry_hash = view_entry_hash(previous, event_id, staff_id, dossier.dossier_id, allowed, rule, at)
            world.chain[dossier.dossier_id] = entry_hash
            yield (DossierViewed(staff_id=staff_id, branch_id=self.branch_ids[dossier.branch],
                                 dossier_id=dossier.dossier_id, allowed=allowed, rule=rule, viewed_at=at,
                                 previous_hash=previous, entry_hash=entry_hash), event_id, at, at)
        while upcoming is not None:
            yield upcoming.event, str(self.uid()), upcoming.recorded, upcoming.effective
            upcoming = next(planned, None)

    def _view_times(self) -> list[tuple[float, int]]:
        """Each view's moment and dossier: dossiers drawn by how long they are open, the moment
        uniform in that time (from a minute after opening), all in time order."""
        spans = []
        for dossier in self.dossiers:
            start = dossier.opened.timestamp() + 60
            end = (dossier.closed or YEAR_END).timestamp() - 60
            spans.append((start, max(end - start, 1.0)))
        cumulative = []
        total = 0.0
        for _, width in spans:
            total += width
            cumulative.append(total)
        chosen = self.rng.choices(range(len(spans)), cum_weights=cumulative, k=self.views)
        rnd = self.rng.random
        out = [(spans[i][0] + rnd() * spans[i][1], i) for i in chosen]
        out.sort()
        return out


class _World:
    """What the live access service knew at each moment while the views were made."""

    def __init__(self, year: SchoolYear) -> None:
        self.role: dict[UUID, StaffRole] = {}
        self.active: set[UUID] = set()
        self.by_branch_role: dict[tuple[UUID, StaffRole], list[UUID]] = {}
        self.consultants: dict[str, list[UUID]] = {}
        self.contact: dict[UUID, UUID] = {}
        self.grants: dict[UUID, dict[UUID, datetime | None]] = {}
        self.chain: dict[UUID, str] = {}
        self.branch_wijk = dict(zip(year.branch_ids, year.branch_wijk, strict=True))
        self.branch_ids = year.branch_ids

    def _place(self, branch_id: UUID, staff_id: UUID, role: StaffRole, present: bool) -> None:
        members = self.by_branch_role.setdefault((branch_id, role), [])
        if present and staff_id not in members:
            members.append(staff_id)
        elif not present and staff_id in members:
            members.remove(staff_id)

    def apply(self, event: Event) -> None:
        match event:
            case StaffJoined():
                self.role[event.staff_id] = event.role
                self.active.add(event.staff_id)
                self._place(event.branch_id, event.staff_id, event.role, True)
            case StaffRoleChanged():
                self._place(event.branch_id, event.staff_id, event.previous_role, False)
                self._place(event.branch_id, event.staff_id, event.role, True)
                self.role[event.staff_id] = event.role
            case StaffDeparted():
                self.active.discard(event.staff_id)
                self._place(event.branch_id, event.staff_id, self.role[event.staff_id], False)
            case ConsultantJoined():
                self.role[event.staff_id] = StaffRole.SWV_CONSULTANT
                self.active.add(event.staff_id)
                for wijk in event.wijknetwerken:
                    self.consultants.setdefault(wijk, []).append(event.staff_id)
            case ConsultantDeparted():
                self.active.discard(event.staff_id)
                for members in self.consultants.values():
                    if event.staff_id in members:
                        members.remove(event.staff_id)
            case DossierOpened() | DossierContactAssigned():
                self.contact[event.dossier_id] = event.contact_staff_id
            case AccessGranted(rule=rule) if rule == RULE_EXPLICIT and event.dossier_id is not None:
                self.grants.setdefault(event.dossier_id, {})[event.staff_id] = event.until
            case AccessRevoked(rule=rule) if rule == RULE_EXPLICIT and event.dossier_id is not None:
                self.grants.get(event.dossier_id, {}).pop(event.staff_id, None)

    def viewer(self, dossier: PlannedDossier, at: datetime, rng: random.Random) -> tuple[UUID, bool, str]:
        """Who opens the dossier now, and what the access check said."""
        branch_id = self.branch_ids[dossier.branch]
        contact = self.contact[dossier.dossier_id]
        r = rng.random()
        pool: list[UUID] = []
        if r < 0.25:
            pool = self.by_branch_role.get((branch_id, StaffRole.IB_ER), [])
        elif r < 0.35:
            pool = self.by_branch_role.get((branch_id, StaffRole.DIRECTEUR), [])
        elif r < 0.45:
            pool = [s for s, until in self.grants.get(dossier.dossier_id, {}).items()
                    if s in self.active and (until is None or at < until)]
        elif r < 0.50:
            pool = self.consultants.get(self.branch_wijk[branch_id], [])
        elif r < 0.55:
            teachers = self.by_branch_role.get((branch_id, StaffRole.LEERKRACHT), [])
            if teachers:
                other = rng.choice(teachers)
                if other != contact:
                    return other, False, "no-rule"
        staff_id = rng.choice(pool) if pool else contact
        if staff_id not in self.active:
            return staff_id, False, "departed"
        role = self.role.get(staff_id)
        if role in BRANCH_RULES:
            return staff_id, True, BRANCH_RULES[role]
        if role is StaffRole.SWV_CONSULTANT:
            return staff_id, True, RULE_SWV
        if staff_id == contact:
            return staff_id, True, RULE_CONTACT
        return staff_id, True, RULE_EXPLICIT
