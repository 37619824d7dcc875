"""The canonical events. One frozen pydantic model per fact, with a stable type name and version.

Fields holding personal data are marked with `Personal`: the envelope codec encrypts them under
the data subject's own key (crypto-shredding), and after a purge they read as ERASED.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from shared.contracts.topics import Topic

# What a reader sees in a personal field whose subject has been purged.
ERASED = "verwijderd"
Erased = Literal["verwijderd"]

PERSONAL_DATA_MARK = "x-personal-data"
PERSONAL_CATEGORY_MARK = "x-personal-category"


class DataCategory(StrEnum):
    """Categories of a data subject's personal data, each sealed under a key of its own, so that
    one can be erased on its own (medical details once no longer needed) and the whole subject
    by destroying them all. Identity and contact is the subject's original key."""

    IDENTITY = "identity"  # name, date of birth, contact details
    MEDICAL = "medical"  # medication, allergies, diagnoses
    DOSSIER = "dossier"  # the free text of a hulpvraag


def personal(category: DataCategory) -> Any:
    """Annotate a field with this to have it encrypted per data subject, under that category's key."""
    extra: dict[str, Any] = {PERSONAL_DATA_MARK: True}
    if category is not DataCategory.IDENTITY:
        extra[PERSONAL_CATEGORY_MARK] = category.value
    return Field(json_schema_extra=extra)


# Annotate a field with this to have it encrypted per data subject (identity and contact).
Personal = personal(DataCategory.IDENTITY)

VESTIGINGSCODE_PATTERN = r"^[0-9]{2}[A-Z]{2}[0-9]{2}$"
Vestigingscode = Annotated[str, StringConstraints(pattern=VESTIGINGSCODE_PATTERN)]
DutchPostcode = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{3} ?[A-Z]{2}$")]
Wijknetwerk = Annotated[str, StringConstraints(min_length=1, max_length=80)]
# The school board (bevoegd gezag) by DUO's five-digit number: whose FG acts for the branch.
BevoegdGezag = Annotated[str, StringConstraints(pattern=r"^[0-9]{5}$")]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Brin = Annotated[str, StringConstraints(pattern=r"^[0-9]{2}[A-Z]{2}$")]
# A registry credential's public id (`svk_<client id>_...` is its API key).
ClientId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{12}$")]
# The identity of an SWV office as its credentials carry it: the first credential's client id,
# or a name the operator gave so that a replacement credential acts for the same office.
OfficeId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]

PersonalName = Annotated[str, StringConstraints(min_length=1, max_length=200), Personal]
PersonalEmail = Annotated[EmailStr | Erased, Personal]
PersonalDate = Annotated[date | Erased, Personal]
PersonalText = Annotated[str, StringConstraints(max_length=10_000), Personal]
DossierText = Annotated[str, StringConstraints(max_length=10_000), personal(DataCategory.DOSSIER)]
MedicalNotes = Annotated[str | None, StringConstraints(max_length=2000), personal(DataCategory.MEDICAL)]


class StaffRole(StrEnum):
    IB_ER = "ib_er"
    DIRECTEUR = "directeur"
    LEERKRACHT = "leerkracht"
    EXTERN = "extern"
    STAGIAIR = "stagiair"
    SWV_CONSULTANT = "swv_consultant"
    ADMINISTRATOR = "administrator"
    # The school board's privacy officer (functionaris gegevensbescherming): sees no dossier;
    # handles data-subject requests, leaks, holds and consent for every branch of their board.
    FG = "fg"


class ConsentPurpose(StrEnum):
    PHOTO_VIDEO = "photo_video"
    RESEARCH = "research"
    RESEARCH_RESULTS_SHARING = "research_results_sharing"


class ConsentGiver(StrEnum):
    PARENT = "parent"
    PUPIL = "pupil"


class SubjectRequestKind(StrEnum):
    INSPECT = "inspect"
    CORRECT = "correct"
    DELETE = "delete"


class Address(BaseModel):
    """A branch's address: an institution's, so not personal data."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    street: ShortText
    house_number: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,5}[A-Za-z0-9 -]{0,6}$")]
    postcode: DutchPostcode
    city: ShortText


class ActedBy(BaseModel):
    """Who did an administrative or privacy action, as NEN 7513 records every access: the
    responsible person (a staff id) or, for a service acting on its own, `client:<client id>`;
    the client software that carried the call; and, when a service acted for a person (an
    exchanged token, RFC 8693), that person. Ids only: no names."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    actor: ShortText
    client: ShortText
    on_behalf_of: ShortText | None = None


class Event(BaseModel):
    """Base of every canonical event."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    # Versions below this carried their personal fields in clear (written before a field was
    # marked Personal); they are read as they are, newer ones must arrive sealed.
    sealed_from_version: ClassVar[int] = 1
    topic: ClassVar[Topic]

    def partition_key(self) -> str:
        """Kafka key: the entity whose events must stay in order."""
        raise NotImplementedError

    def data_subject(self) -> str | None:
        """The key id personal fields are encrypted under (None: the event has none)."""
        return None

    @classmethod
    def personal_fields(cls) -> frozenset[str]:
        return frozenset(
            name for name, info in cls.model_fields.items()
            if isinstance(info.json_schema_extra, dict)
            and info.json_schema_extra.get(PERSONAL_DATA_MARK)
        )

    @classmethod
    def personal_categories(cls) -> dict[DataCategory, frozenset[str]]:
        """The personal fields by the category whose key seals them."""
        found: dict[DataCategory, set[str]] = {}
        for name in cls.personal_fields():
            extra = cls.model_fields[name].json_schema_extra
            marked = extra.get(PERSONAL_CATEGORY_MARK) if isinstance(extra, dict) else None
            category = DataCategory(str(marked)) if marked else DataCategory.IDENTITY
            found.setdefault(category, set()).add(name)
        return {category: frozenset(names) for category, names in found.items()}

    def subject_reference(self) -> str | None:
        """CloudEvents `subject`: what the event is about, by id only (never personal data)."""
        return None


def pupil_key_id(pupil_id: UUID) -> str:
    return f"pupil/{pupil_id}"


def category_key_id(subject_key_id: str, category: DataCategory) -> str:
    """The key of one category of a subject's data. Identity and contact keep the subject's own
    key, so every event sealed before categories existed (all fields under that key) still reads."""
    return subject_key_id if category is DataCategory.IDENTITY else f"{subject_key_id}/{category.value}"


def subject_key_ids(subject_key_id: str) -> list[str]:
    """Every key of a subject: a purge destroys them all."""
    return [category_key_id(subject_key_id, category) for category in DataCategory]


def staff_key_id(staff_id: UUID) -> str:
    return f"staff/{staff_id}"


class BranchEvent(Event):
    topic: ClassVar[Topic] = Topic.REGISTRY_EVENTS
    branch_id: UUID

    def partition_key(self) -> str:
        return str(self.branch_id)

    def subject_reference(self) -> str | None:
        return f"branch/{self.branch_id}"


# --- registry: branches -------------------------------------------------------------------

class BranchFounded(BranchEvent):
    event_type: ClassVar[str] = "BranchFounded"
    vestigingscode: Vestigingscode
    name: ShortText
    address: Address
    phone: Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")]
    wijknetwerk: Wijknetwerk
    # None: not reported; the branch is then a board of its own (only its own FG acts for it).
    bevoegd_gezag: BevoegdGezag | None = None


class BranchMoved(BranchEvent):
    event_type: ClassVar[str] = "BranchMoved"
    vestigingscode: Vestigingscode
    address: Address
    phone: Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")]


class BranchRenamed(BranchEvent):
    event_type: ClassVar[str] = "BranchRenamed"
    vestigingscode: Vestigingscode
    name: ShortText


class BranchBrinChanged(BranchEvent):
    event_type: ClassVar[str] = "BranchBrinChanged"
    previous_vestigingscode: Vestigingscode
    vestigingscode: Vestigingscode


class BranchWijknetwerkChanged(BranchEvent):
    event_type: ClassVar[str] = "BranchWijknetwerkChanged"
    vestigingscode: Vestigingscode
    wijknetwerk: Wijknetwerk


class BranchClosed(BranchEvent):
    event_type: ClassVar[str] = "BranchClosed"
    vestigingscode: Vestigingscode


# --- registry: staff ----------------------------------------------------------------------

class StaffEvent(BranchEvent):
    staff_id: UUID

    def data_subject(self) -> str | None:
        return staff_key_id(self.staff_id) if self.personal_fields() else None

    def subject_reference(self) -> str | None:
        return f"staff/{self.staff_id}"


class StaffJoined(StaffEvent):
    event_type: ClassVar[str] = "StaffJoined"
    role: StaffRole
    name: PersonalName
    email: PersonalEmail
    # Externals and interns get time-bound access only.
    access_until: date | None = None


class StaffRoleChanged(StaffEvent):
    event_type: ClassVar[str] = "StaffRoleChanged"
    previous_role: StaffRole
    role: StaffRole
    access_until: date | None = None


class StaffDeparted(StaffEvent):
    event_type: ClassVar[str] = "StaffDeparted"


# --- registry: SWV consultants (registered by the SWV office, not tied to one branch) --------

class ConsultantEvent(Event):
    topic: ClassVar[Topic] = Topic.REGISTRY_EVENTS
    staff_id: UUID

    def partition_key(self) -> str:
        return f"consultant/{self.staff_id}"

    def data_subject(self) -> str | None:
        return staff_key_id(self.staff_id) if self.personal_fields() else None

    def subject_reference(self) -> str | None:
        return f"staff/{self.staff_id}"


class ConsultantJoined(ConsultantEvent):
    event_type: ClassVar[str] = "ConsultantJoined"
    name: PersonalName
    email: PersonalEmail
    wijknetwerken: list[Wijknetwerk]
    # The SWV office that registered the consultant and alone may depart them (the office
    # identity of its credential). None in events from before consultant ids were scoped by office.
    office: OfficeId | None = None


class ConsultantDeparted(ConsultantEvent):
    event_type: ClassVar[str] = "ConsultantDeparted"


# --- registry: its own credentials (school systems and the SWV office) ----------------------

class CredentialEvent(Event):
    """A change to a registry credential. Ids and scopes only: never an API key, a signing key
    or a hash of either."""

    topic: ClassVar[Topic] = Topic.REGISTRY_EVENTS
    client_id: ClientId
    # Who made the change: `operator:<OS user>` for the operator's command, `client:<client id>`
    # when it follows from what that credential reported.
    acted_by: ShortText

    def partition_key(self) -> str:
        return f"credential/{self.client_id}"

    def subject_reference(self) -> str | None:
        return f"credential/{self.client_id}"


class CredentialIssued(CredentialEvent):
    """A credential for a school system (its BRINs) or for the SWV office (its wijknetwerken)."""

    event_type: ClassVar[str] = "CredentialIssued"
    name: ShortText
    brins: list[Brin]
    wijknetwerken: list[Wijknetwerk]
    # For the SWV office: the office identity its consultants are registered under.
    office: OfficeId | None = None


class CredentialScopeChanged(CredentialEvent):
    """What the credential serves after the change, in full."""

    event_type: ClassVar[str] = "CredentialScopeChanged"
    brins: list[Brin]
    wijknetwerken: list[Wijknetwerk]
    # Branches it serves outside its BRINs: its own branches that changed BRIN.
    branch_ids: list[UUID] = []
    reason: Literal["operator", "branch-brin-changed"]


class CredentialRotated(CredentialEvent):
    """A new API key and signing key were issued; the previous ones work until the overlap ends."""

    event_type: ClassVar[str] = "CredentialRotated"
    previous_keys_valid_until: datetime


class CredentialRevoked(CredentialEvent):
    event_type: ClassVar[str] = "CredentialRevoked"


# --- registry: pupils and dossiers ---------------------------------------------------------

class PupilEvent(BranchEvent):
    pupil_id: UUID

    def data_subject(self) -> str | None:
        return pupil_key_id(self.pupil_id)

    def subject_reference(self) -> str | None:
        return f"pupil/{self.pupil_id}"


class PupilEnrolled(PupilEvent):
    event_type: ClassVar[str] = "PupilEnrolled"
    name: PersonalName
    date_of_birth: PersonalDate
    parent_emails: Annotated[list[EmailStr] | Erased, Personal]
    # Medication, allergies: only where the school needs them; erasable on its own.
    medical_notes: MedicalNotes = None


class PupilLeft(PupilEvent):
    event_type: ClassVar[str] = "PupilLeft"
    left_on: date


class DossierEvent(BranchEvent):
    dossier_id: UUID

    def subject_reference(self) -> str | None:
        return f"dossier/{self.dossier_id}"


class DossierOpened(DossierEvent):
    event_type: ClassVar[str] = "DossierOpened"
    pupil_id: UUID
    contact_staff_id: UUID
    # Free text about the child's need for help (its own key: erasable apart from the pupil).
    summary: DossierText

    def data_subject(self) -> str | None:
        return pupil_key_id(self.pupil_id)


class DossierContactAssigned(DossierEvent):
    event_type: ClassVar[str] = "DossierContactAssigned"
    contact_staff_id: UUID
    reason: Literal["reported", "contact departed"]


class DossierClosed(DossierEvent):
    event_type: ClassVar[str] = "DossierClosed"


class ContactPersonMissing(DossierEvent):
    """An open dossier whose contact person departed and whose branch has no IB'er to take over."""

    event_type: ClassVar[str] = "ContactPersonMissing"
    previous_contact_staff_id: UUID


# --- access -------------------------------------------------------------------------------

class AccessEvent(Event):
    topic: ClassVar[Topic] = Topic.ACCESS_EVENTS
    staff_id: UUID
    # The staff member's branch; None for SWV consultants.
    branch_id: UUID | None = None

    def partition_key(self) -> str:
        return str(self.staff_id)

    def subject_reference(self) -> str | None:
        return f"staff/{self.staff_id}"


class AccessGranted(AccessEvent):
    event_type: ClassVar[str] = "AccessGranted"
    # None: a standing rule (the IB'er, director and consultant rules), not one dossier.
    dossier_id: UUID | None = None
    rule: ShortText
    until: datetime | None = None
    # Who granted it: set for an explicit grant through the API; None for a rule's own change.
    acted_by: ActedBy | None = None


class AccessRevoked(AccessEvent):
    event_type: ClassVar[str] = "AccessRevoked"
    dossier_id: UUID | None = None
    rule: ShortText
    reason: ShortText
    acted_by: ActedBy | None = None  # set for a revocation through the API


class NotificationsStopped(AccessEvent):
    event_type: ClassVar[str] = "NotificationsStopped"
    reason: ShortText


class ConfidentialityAgreementRecorded(AccessEvent):
    """An extern's or stagiair's signed confidentiality agreement, recorded by an IB'er or director
    of their branch. Without one valid at the moment, no grant for them takes effect."""

    event_type: ClassVar[str] = "ConfidentialityAgreementRecorded"
    version: ShortText  # which text they signed, e.g. "geheimhouding-2026-1"
    signed_on: date
    valid_until: date  # through that day, Dutch time
    acted_by: ActedBy | None = None


class ConfidentialityAgreementRevoked(AccessEvent):
    event_type: ClassVar[str] = "ConfidentialityAgreementRevoked"
    version: ShortText
    reason: ShortText
    acted_by: ActedBy | None = None


class DossierViewed(AccessEvent):
    """One entry of the access log. Entries of one dossier form a hash chain: each carries the
    hash of the one before, so an altered, removed or reordered entry shows (see view_entry_hash).
    A change check (`action` "change", with `what`) is an entry of the same chain: the log says
    who looked at and who tried to change a dossier, in one order."""

    event_type: ClassVar[str] = "DossierViewed"
    dossier_id: UUID
    allowed: bool
    rule: ShortText
    viewed_at: datetime
    previous_hash: str | None = None  # None for the dossier's first view
    entry_hash: str
    # Through which client, for whom (NEN 7513); outside the hash: the access service's signature
    # on the event covers it.
    acted_by: ActedBy | None = None
    # "view", or "change" with what was to change (contact, text, status). Inside the hash, but
    # only when not "view": entries logged before these fields existed still verify.
    action: ShortText = "view"
    what: ShortText | None = None

    def partition_key(self) -> str:
        # One dossier's views in order, on one partition.
        return str(self.dossier_id)

    def subject_reference(self) -> str | None:
        return f"dossier/{self.dossier_id}"


def view_entry_hash(previous_hash: str | None, event_id: str, staff_id: UUID, dossier_id: UUID, allowed: bool,
                    rule: str, viewed_at: datetime, action: str = "view", what: str | None = None) -> str:
    """SHA-256 over the previous entry's hash and this entry's facts (and its event id). A view's
    material is what it always was; a change check adds its action and what."""
    import hashlib

    parts = [previous_hash or "", event_id, str(staff_id), str(dossier_id), "1" if allowed else "0", rule,
             viewed_at.isoformat()]
    if action != "view":
        parts += [action, what or ""]
    material = "\x1f".join(parts)
    return hashlib.sha256(material.encode()).hexdigest()


# --- auth ---------------------------------------------------------------------------------

class AuthEvent(Event):
    topic: ClassVar[Topic] = Topic.AUTH_EVENTS
    staff_id: UUID

    def partition_key(self) -> str:
        return str(self.staff_id)

    def subject_reference(self) -> str | None:
        return f"staff/{self.staff_id}"


class AccountInvited(AuthEvent):
    """An account exists for the staff member; an invitation to set a password went out."""

    event_type: ClassVar[str] = "AccountInvited"
    expires_at: datetime


class AccountDisabled(AuthEvent):
    event_type: ClassVar[str] = "AccountDisabled"
    reason: Literal["staff departed"]


class LoginSucceeded(AuthEvent):
    event_type: ClassVar[str] = "LoginSucceeded"
    session_id: UUID
    second_factor: Literal["totp", "recovery-code", "passkey"]


class LoginFailed(Event):
    """A failed step of a login. Only a reason code: never what was typed."""

    event_type: ClassVar[str] = "LoginFailed"
    topic: ClassVar[Topic] = Topic.AUTH_EVENTS
    # None when the name given matches no account (the answer to the user does not say so).
    staff_id: UUID | None = None
    reason: Literal["bad-password", "bad-code", "code-replayed", "bad-recovery-code", "bad-passkey", "locked",
                    "unknown-account",
                    "account-disabled", "not-enrolled"]
    client: ShortText

    def partition_key(self) -> str:
        return str(self.staff_id) if self.staff_id else f"client/{self.client}"


class AccountLocked(AuthEvent):
    event_type: ClassVar[str] = "AccountLocked"
    factor: Literal["password", "code"]
    until: datetime


class RecoveryCodeUsed(AuthEvent):
    event_type: ClassVar[str] = "RecoveryCodeUsed"
    remaining: int


class SecondFactorEnrolled(AuthEvent):
    event_type: ClassVar[str] = "SecondFactorEnrolled"
    method: Literal["totp", "passkey"] = "totp"


class PasskeyRemoved(AuthEvent):
    """The staff member removed one of their passkeys (`passkey_id`: a digest of its credential id)."""

    event_type: ClassVar[str] = "PasskeyRemoved"
    passkey_id: str


class SessionEnded(AuthEvent):
    event_type: ClassVar[str] = "SessionEnded"
    # A reference to the session (its id), never the token itself.
    session_id: UUID
    reason: Literal["logout", "idle", "expired", "staff departed", "account disabled", "second factor reset",
                    "re-invited"]


class FactorResetRequested(AuthEvent):
    """An SWV admin asks to reset a staff member's lost second factor; a second admin must
    approve. The reason may name people: sealed under the staff member's key."""

    event_type: ClassVar[str] = "FactorResetRequested"
    reset_id: UUID
    requested_by: UUID
    reason: PersonalText

    def data_subject(self) -> str | None:
        return staff_key_id(self.staff_id)


class FactorResetApproved(AuthEvent):
    """A second admin approved: the old factor and recovery codes are gone, every session ended,
    and a fresh single-use enrolment link went to the staff member."""

    event_type: ClassVar[str] = "FactorResetApproved"
    reset_id: UUID
    approved_by: UUID


class AccountReinvited(AuthEvent):
    """An admin sent a fresh invitation to an account whose enrolment was never finished."""

    event_type: ClassVar[str] = "AccountReinvited"
    invited_by: UUID
    expires_at: datetime


class AdminAppointed(AuthEvent):
    """The operator made the staff member an SWV admin of the login accounts."""

    event_type: ClassVar[str] = "AdminAppointed"
    acted_by: ActedBy


class AdminRemoved(AuthEvent):
    event_type: ClassVar[str] = "AdminRemoved"
    acted_by: ActedBy


class OidcClientEvent(Event):
    """A relying party or service client of the provider, registered or revoked by the operator."""

    topic: ClassVar[Topic] = Topic.AUTH_EVENTS
    client_id: ShortText
    acted_by: ActedBy

    def partition_key(self) -> str:
        return f"client/{self.client_id}"

    def subject_reference(self) -> str | None:
        return f"client/{self.client_id}"


class OidcClientRegistered(OidcClientEvent):
    event_type: ClassVar[str] = "OidcClientRegistered"
    name: ShortText
    grant_types: list[ShortText]
    scopes: list[ShortText] = []


class OidcClientRevoked(OidcClientEvent):
    event_type: ClassVar[str] = "OidcClientRevoked"


# --- retention ----------------------------------------------------------------------------

class RetentionEvent(Event):
    topic: ClassVar[Topic] = Topic.RETENTION_EVENTS
    pupil_id: UUID

    def partition_key(self) -> str:
        return str(self.pupil_id)

    def subject_reference(self) -> str | None:
        return f"pupil/{self.pupil_id}"


class ConsentGiven(RetentionEvent):
    event_type: ClassVar[str] = "ConsentGiven"
    purpose: ConsentPurpose
    given_by: ConsentGiver
    acted_by: ActedBy | None = None  # who did it (NEN 7513); None in events from before


class ConsentWithdrawn(RetentionEvent):
    event_type: ClassVar[str] = "ConsentWithdrawn"
    purpose: ConsentPurpose
    withdrawn_by: ConsentGiver
    acted_by: ActedBy | None = None  # who did it (NEN 7513); None in events from before


class PurgeScheduled(RetentionEvent):
    event_type: ClassVar[str] = "PurgeScheduled"
    category: ShortText
    due_on: date


class PupilDataPurged(RetentionEvent):
    """The pupil's key is destroyed: every copy of their personal data in every topic is now
    unreadable. Every service drops its rows about the pupil on this event."""

    event_type: ClassVar[str] = "PupilDataPurged"
    key_id: ShortText


class PupilCategoryErased(RetentionEvent):
    """One category of the pupil's data (medical, dossier text) was erased on its own: its key
    is destroyed, so that category reads as ERASED in every copy; the rest of the pupil stays."""

    event_type: ClassVar[str] = "PupilCategoryErased"
    category: DataCategory
    key_id: ShortText
    acted_by: ActedBy | None = None


class LegalHoldPlaced(RetentionEvent):
    """A purge must wait (a legal obligation, a dispute, an investigation). The reason is free
    text about a child (a dispute, an investigation): sealed under the pupil's key (issue 16)."""

    event_type: ClassVar[str] = "LegalHoldPlaced"
    # v2: the reason sealed; v1 events (reason in clear) read as they are.
    schema_version: ClassVar[int] = 2
    sealed_from_version: ClassVar[int] = 2
    reason: Annotated[ShortText, Personal]
    acted_by: ActedBy | None = None  # who did it (NEN 7513); None in events from before

    def data_subject(self) -> str | None:
        return pupil_key_id(self.pupil_id)


class LegalHoldReleased(RetentionEvent):
    event_type: ClassVar[str] = "LegalHoldReleased"
    acted_by: ActedBy | None = None  # who did it (NEN 7513); None in events from before


class SubjectRequestReceived(RetentionEvent):
    event_type: ClassVar[str] = "SubjectRequestReceived"
    request_id: UUID
    kind: SubjectRequestKind
    requested_by: ConsentGiver
    due_on: date
    acted_by: ActedBy | None = None  # who did it (NEN 7513); None in events from before


class SubjectRequestAnswered(RetentionEvent):
    event_type: ClassVar[str] = "SubjectRequestAnswered"
    request_id: UUID
    outcome: ShortText
    acted_by: ActedBy | None = None  # who did it (NEN 7513); None in events from before


class PupilDetailsCorrected(RetentionEvent):
    """A correction request was granted: these fields replace what the school system reported
    (absent fields are unchanged). Sealed under the pupil's key like the originals."""

    event_type: ClassVar[str] = "PupilDetailsCorrected"
    request_id: UUID
    name: Annotated[str | None, Personal] = None
    date_of_birth: Annotated[date | Erased | None, Personal] = None
    parent_emails: Annotated[list[EmailStr] | Erased | None, Personal] = None
    acted_by: ActedBy | None = None  # who did it (NEN 7513); None in events from before

    def data_subject(self) -> str | None:
        return pupil_key_id(self.pupil_id)


class LeakEvent(Event):
    topic: ClassVar[Topic] = Topic.RETENTION_EVENTS
    leak_id: UUID

    def partition_key(self) -> str:
        return str(self.leak_id)

    def subject_reference(self) -> str | None:
        return f"leak/{self.leak_id}"


class DataLeaked(LeakEvent):
    event_type: ClassVar[str] = "DataLeaked"
    # What leaked, in terms of categories and systems; names of children do not belong here.
    nature: ShortText
    discovered_at: datetime
    pupil_ids: list[UUID] = []
    dossier_ids: list[UUID] = []
    # Accounts whose access leaked (a stolen laptop, a phished password): everything they could
    # see at the discovery counts as leaked.
    staff_ids: list[UUID] = []
    # The fixed text the parents' mail is built from (retention letters.LEAK_NOTICES).
    notice: ShortText | None = None
    acted_by: ActedBy | None = None  # who did it (NEN 7513); None in events from before


class LeakMailingApproved(LeakEvent):
    """A second FG approved the parents' mail of a leak that reaches more parents than one
    person may mail alone (retention setting leak_mail_second_approval_above)."""

    event_type: ClassVar[str] = "LeakMailingApproved"
    recipients: int
    acted_by: ActedBy | None = None


class ParentsNotified(LeakEvent):
    event_type: ClassVar[str] = "ParentsNotified"
    pupil_id: UUID
    recipients: int


class RegulatorNotified(LeakEvent):
    event_type: ClassVar[str] = "RegulatorNotified"
    reported_at: datetime
    reference: ShortText
    # AVG art. 33(1): a report after 72 hours must say why it is late.
    delay_reason: ShortText | None = None
    acted_by: ActedBy | None = None  # who did it (NEN 7513); None in events from before


class LeakNotReportable(LeakEvent):
    """The controller assessed the leak as unlikely to result in a risk to the people affected
    (AVG art. 33(1)): no report to the regulator is due; the register keeps the reasoning."""

    event_type: ClassVar[str] = "LeakNotReportable"
    reason: ShortText
    acted_by: ActedBy | None = None  # who did it (NEN 7513); None in events from before


class LeakReportOverdue(LeakEvent):
    """The alarm: 72 hours have passed since discovery and the Autoriteit Persoonsgegevens has
    not been notified."""

    event_type: ClassVar[str] = "LeakReportOverdue"
    deadline: datetime


def _all_event_classes() -> dict[str, type[Event]]:
    found: dict[str, type[Event]] = {}
    pending: list[type[Event]] = [Event]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "event_type" in cls.__dict__:
            if cls.event_type in found:
                raise TypeError(f"event type {cls.event_type} declared twice")
            found[cls.event_type] = cls
    return dict(sorted(found.items()))


EVENT_TYPES: dict[str, type[Event]] = _all_event_classes()
EVENT_TYPE_NAME = re.compile(r"^[A-Z][A-Za-z]+$")


def event_class(event_type: str) -> type[Event] | None:
    return EVENT_TYPES.get(event_type)


def json_schema(cls: type[Event]) -> dict[str, Any]:
    schema = cls.model_json_schema()
    schema["$id"] = f"urn:samenveilig:event:{cls.event_type}:v{cls.schema_version}"
    schema["x-event-type"] = cls.event_type
    schema["x-schema-version"] = cls.schema_version
    schema["x-topic"] = str(cls.topic)
    return schema
