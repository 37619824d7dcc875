"""The intake contract: mutations that school systems (and the SWV office) report to the registry,
through `POST /v1/mutations` or the `registry.mutations.v1` topic. Same model, same validation."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Literal

import phonenumbers
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    EmailStr,
    Field,
    StringConstraints,
    Tag,
    field_validator,
    model_validator,
)

from shared.contracts.events import Address, BevoegdGezag, StaffRole, Vestigingscode, Wijknetwerk

MutationId = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")]
# The school system's own reference for a person or dossier; never a name or a BSN.
SenderRef = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
BranchName = Annotated[str, StringConstraints(min_length=2, max_length=120, strip_whitespace=True)]
PersonName = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
ROLES_WITH_END_DATE = frozenset({StaffRole.EXTERN, StaffRole.STAGIAIR})
SCHOOL_ROLES = frozenset(StaffRole) - {StaffRole.SWV_CONSULTANT}


def brin_of(vestigingscode: str) -> str:
    return vestigingscode[:4]


class BranchChange(StrEnum):
    FOUNDED = "founded"          # oprichting
    MOVED = "moved"              # verhuizing
    RENAMED = "renamed"          # naamswijziging
    BRIN_CHANGED = "brin_changed"  # wijziging BRIN
    CLOSED = "closed"            # sluiting
    WIJKNETWERK_CHANGED = "wijknetwerk_changed"


class _Mutation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    mutation_id: MutationId = Field(description="The sender's own id; sending it again is harmless.")
    effective_at: AwareDatetime | None = Field(
        default=None, description="When the change takes effect; past or future. Default: now.")


def _dutch_phone(value: str) -> str:
    try:
        number = phonenumbers.parse(value, "NL")
    except phonenumbers.NumberParseException as error:
        raise ValueError("not a phone number") from error
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class BranchReport(_Mutation):
    """A branch change, with every field PPO's form asks for (actie 2)."""

    kind: Literal["branch"] = "branch"
    change: BranchChange
    vestigingscode: Vestigingscode = Field(description="BRIN + vestigingsnummer, e.g. 12AB00; for a "
                                                       "BRIN change the code before the change.")
    new_vestigingscode: Vestigingscode | None = Field(default=None, description="Only for brin_changed.")
    name: BranchName
    address: Address
    phone: str = Field(description="Dutch or international phone number; stored as E.164.")
    wijknetwerk: Wijknetwerk
    bevoegd_gezag: BevoegdGezag | None = Field(
        default=None, description="The school board's DUO number (5 digits), for founded: its FG "
                                  "handles privacy for every branch of the board.")

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str) -> str:
        return _dutch_phone(value)

    @model_validator(mode="after")
    def _new_code_only_for_brin_change(self) -> BranchReport:
        if (self.change is BranchChange.BRIN_CHANGED) != (self.new_vestigingscode is not None):
            raise ValueError("new_vestigingscode is required for brin_changed and only for it")
        if self.new_vestigingscode == self.vestigingscode:
            raise ValueError("new_vestigingscode equals vestigingscode")
        return self

    def brins(self) -> set[str]:
        codes = {self.vestigingscode} | ({self.new_vestigingscode} if self.new_vestigingscode else set())
        return {brin_of(code) for code in codes}


class StaffJoinedReport(_Mutation):
    kind: Literal["staff_joined"] = "staff_joined"
    vestigingscode: Vestigingscode
    staff_ref: SenderRef
    role: StaffRole
    name: PersonName
    email: EmailStr
    access_until: date | None = Field(default=None, description="Required for extern and stagiair.")

    @model_validator(mode="after")
    def _role_rules(self) -> StaffJoinedReport:
        _check_role(self.role, self.access_until)
        return self


class StaffRoleChangedReport(_Mutation):
    kind: Literal["staff_role_changed"] = "staff_role_changed"
    vestigingscode: Vestigingscode
    staff_ref: SenderRef
    role: StaffRole
    access_until: date | None = None

    @model_validator(mode="after")
    def _role_rules(self) -> StaffRoleChangedReport:
        _check_role(self.role, self.access_until)
        return self


def _check_role(role: StaffRole, access_until: date | None) -> None:
    if role is StaffRole.SWV_CONSULTANT:
        raise ValueError("SWV consultants are registered by the SWV office (kind consultant_joined)")
    if role in ROLES_WITH_END_DATE and access_until is None:
        raise ValueError("access_until is required for extern and stagiair")
    if role not in ROLES_WITH_END_DATE and access_until is not None:
        raise ValueError("access_until is only for extern and stagiair")


class StaffDepartedReport(_Mutation):
    kind: Literal["staff_departed"] = "staff_departed"
    vestigingscode: Vestigingscode
    staff_ref: SenderRef


class PupilEnrolledReport(_Mutation):
    kind: Literal["pupil_enrolled"] = "pupil_enrolled"
    vestigingscode: Vestigingscode
    pupil_ref: SenderRef
    name: PersonName
    date_of_birth: date
    parent_emails: list[EmailStr] = Field(min_length=1, max_length=4)
    medical_notes: str | None = Field(
        default=None, max_length=2000,
        description="Medication, allergies: only what the school needs. Sealed under a key of its own, "
                    "so it can be erased when no longer needed while the rest of the pupil's data stays.")


class PupilLeftReport(_Mutation):
    kind: Literal["pupil_left"] = "pupil_left"
    vestigingscode: Vestigingscode
    pupil_ref: SenderRef
    left_on: date


class DossierOpenedReport(_Mutation):
    kind: Literal["dossier_opened"] = "dossier_opened"
    vestigingscode: Vestigingscode
    dossier_ref: SenderRef
    pupil_ref: SenderRef
    contact_staff_ref: SenderRef
    summary: Annotated[str, StringConstraints(min_length=1, max_length=10_000)]


class DossierContactAssignedReport(_Mutation):
    kind: Literal["dossier_contact_assigned"] = "dossier_contact_assigned"
    vestigingscode: Vestigingscode
    dossier_ref: SenderRef
    contact_staff_ref: SenderRef


class DossierClosedReport(_Mutation):
    kind: Literal["dossier_closed"] = "dossier_closed"
    vestigingscode: Vestigingscode
    dossier_ref: SenderRef


class ConsultantJoinedReport(_Mutation):
    """An SWV consultant, registered by the SWV office for one or more wijknetwerken."""

    kind: Literal["consultant_joined"] = "consultant_joined"
    consultant_ref: SenderRef
    name: PersonName
    email: EmailStr
    wijknetwerken: list[Wijknetwerk] = Field(min_length=1, max_length=20)


class ConsultantDepartedReport(_Mutation):
    kind: Literal["consultant_departed"] = "consultant_departed"
    consultant_ref: SenderRef


SchoolMutation = (BranchReport | StaffJoinedReport | StaffRoleChangedReport | StaffDepartedReport
                  | PupilEnrolledReport | PupilLeftReport | DossierOpenedReport
                  | DossierContactAssignedReport | DossierClosedReport)
ConsultantMutation = ConsultantJoinedReport | ConsultantDepartedReport
Mutation = Annotated[SchoolMutation | ConsultantMutation, Field(discriminator="kind")]


class MutationBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mutations: list[Mutation] = Field(min_length=1, max_length=500)


def brins_of(mutation: SchoolMutation | ConsultantMutation) -> set[str]:
    """The BRINs a credential must serve to report this mutation (empty: an SWV-office mutation)."""
    if isinstance(mutation, BranchReport):
        return mutation.brins()
    if isinstance(mutation, ConsultantJoinedReport | ConsultantDepartedReport):
        return set()
    return {brin_of(mutation.vestigingscode)}




def _request_shape(value: object) -> str:
    if isinstance(value, dict):
        return "batch" if "mutations" in value else "single"
    return "batch" if isinstance(value, MutationBatch) else "single"


# What `POST /v1/mutations` takes: one mutation, or {"mutations": [...]}. The explicit
# discriminator keeps error locations short ("body.batch.mutations.1.branch.phone").
MutationRequest = Annotated[
    Annotated[MutationBatch, Tag("batch")] | Annotated[Mutation, Tag("single")],
    Discriminator(_request_shape),
]
