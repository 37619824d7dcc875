"""One valid instance of every canonical event, for round-trip tests."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from shared.contracts import events as e

BRANCH = uuid.UUID("11111111-1111-4111-8111-111111111111")
STAFF = uuid.UUID("22222222-2222-4222-8222-222222222222")
PUPIL = uuid.UUID("33333333-3333-4333-8333-333333333333")
DOSSIER = uuid.UUID("44444444-4444-4444-8444-444444444444")
LEAK = uuid.UUID("55555555-5555-4555-8555-555555555555")
REQUEST = uuid.UUID("66666666-6666-4666-8666-666666666666")
ADDRESS = e.Address(street="Schiekade", house_number="12a", postcode="3032 AJ", city="Rotterdam")
MOMENT = datetime(2026, 9, 1, 8, 30, tzinfo=UTC)

SAMPLES: list[e.Event] = [
    e.BranchFounded(branch_id=BRANCH, vestigingscode="12AB00", name="OBS De Regenboog",
                    address=ADDRESS, phone="+31101234567", wijknetwerk="Noord"),
    e.BranchMoved(branch_id=BRANCH, vestigingscode="12AB00", address=ADDRESS, phone="+31101234567"),
    e.BranchRenamed(branch_id=BRANCH, vestigingscode="12AB00", name="IKC De Regenboog"),
    e.BranchBrinChanged(branch_id=BRANCH, previous_vestigingscode="12AB00", vestigingscode="34CD01"),
    e.BranchWijknetwerkChanged(branch_id=BRANCH, vestigingscode="12AB00", wijknetwerk="Charlois"),
    e.BranchClosed(branch_id=BRANCH, vestigingscode="12AB00"),
    e.StaffJoined(branch_id=BRANCH, staff_id=STAFF, role=e.StaffRole.IB_ER, name="Fatima el Amrani",
                  email="f.elamrani@regenboog.example"),
    e.StaffRoleChanged(branch_id=BRANCH, staff_id=STAFF, previous_role=e.StaffRole.LEERKRACHT,
                       role=e.StaffRole.STAGIAIR, access_until=date(2027, 1, 31)),
    e.StaffDeparted(branch_id=BRANCH, staff_id=STAFF),
    e.ConsultantJoined(staff_id=STAFF, name="Anouk Visser", email="a.visser@swv.example",
                       wijknetwerken=["Noord", "Charlois"], office="a1b2c3d4e5f7"),
    e.ConsultantDeparted(staff_id=STAFF),
    e.CredentialIssued(client_id="a1b2c3d4e5f6", acted_by="operator:beheer", name="ParnasSys OBS De Regenboog",
                       brins=["12AB"], wijknetwerken=[]),
    e.CredentialScopeChanged(client_id="a1b2c3d4e5f6", acted_by="client:a1b2c3d4e5f6", brins=["12AB"],
                             wijknetwerken=[], branch_ids=[BRANCH], reason="branch-brin-changed"),
    e.CredentialRotated(client_id="a1b2c3d4e5f6", acted_by="operator:beheer", previous_keys_valid_until=MOMENT),
    e.CredentialRevoked(client_id="a1b2c3d4e5f6", acted_by="operator:beheer"),
    e.PupilEnrolled(branch_id=BRANCH, pupil_id=PUPIL, name="Daan Jansen", date_of_birth=date(2016, 2, 29),
                    parent_emails=["ouder.jansen@example.nl"], medical_notes="Pinda-allergie; epipen in de tas."),
    e.PupilLeft(branch_id=BRANCH, pupil_id=PUPIL, left_on=date(2026, 7, 17)),
    e.DossierOpened(branch_id=BRANCH, dossier_id=DOSSIER, pupil_id=PUPIL, contact_staff_id=STAFF,
                    summary="Daan heeft moeite met lezen en concentratie."),
    e.DossierContactAssigned(branch_id=BRANCH, dossier_id=DOSSIER, contact_staff_id=STAFF,
                             reason="contact departed"),
    e.DossierClosed(branch_id=BRANCH, dossier_id=DOSSIER),
    e.AccessGranted(branch_id=BRANCH, staff_id=STAFF, rule="ib_er-sees-branch"),
    e.AccessRevoked(branch_id=BRANCH, staff_id=STAFF, dossier_id=DOSSIER, rule="contact-person",
                    reason="staff departed"),
    e.NotificationsStopped(branch_id=BRANCH, staff_id=STAFF, reason="staff departed"),
    e.ContactPersonMissing(branch_id=BRANCH, dossier_id=DOSSIER, previous_contact_staff_id=STAFF),
    e.DossierViewed(branch_id=BRANCH, staff_id=STAFF, dossier_id=DOSSIER, allowed=False, rule="no-rule",
                    viewed_at=MOMENT, entry_hash="0" * 64),
    e.ConfidentialityAgreementRecorded(branch_id=BRANCH, staff_id=STAFF, version="geheimhouding-2026-1",
                                       signed_on=date(2026, 8, 25), valid_until=date(2027, 1, 31),
                                       acted_by=e.ActedBy(actor=str(STAFF), client="kindkans-backend")),
    e.ConfidentialityAgreementRevoked(branch_id=BRANCH, staff_id=STAFF, version="geheimhouding-2026-1",
                                      reason="revoked by IB'er or director"),
    e.AccountInvited(staff_id=STAFF, expires_at=MOMENT),
    e.AccountDisabled(staff_id=STAFF, reason="staff departed"),
    e.LoginSucceeded(staff_id=STAFF, session_id=REQUEST, second_factor="totp"),
    e.LoginFailed(staff_id=None, reason="unknown-account", client="127.0.0.1"),
    e.AccountLocked(staff_id=STAFF, factor="code", until=MOMENT),
    e.RecoveryCodeUsed(staff_id=STAFF, remaining=9),
    e.SecondFactorEnrolled(staff_id=STAFF),
    e.SessionEnded(staff_id=STAFF, session_id=REQUEST, reason="staff departed"),
    e.FactorResetRequested(staff_id=STAFF, reset_id=REQUEST, requested_by=REQUEST, reason="Telefoon verloren"),
    e.FactorResetApproved(staff_id=STAFF, reset_id=REQUEST, approved_by=REQUEST),
    e.AccountReinvited(staff_id=STAFF, invited_by=REQUEST, expires_at=MOMENT),
    e.PasskeyRemoved(staff_id=STAFF, passkey_id="3f9a0c1d2e4b5a69"),
    e.ConsentGiven(pupil_id=PUPIL, purpose=e.ConsentPurpose.PHOTO_VIDEO, given_by=e.ConsentGiver.PARENT),
    e.ConsentWithdrawn(pupil_id=PUPIL, purpose=e.ConsentPurpose.RESEARCH,
                       withdrawn_by=e.ConsentGiver.PUPIL),
    e.PurgeScheduled(pupil_id=PUPIL, category="leerlingdossier", due_on=date(2028, 7, 17)),
    e.PupilDataPurged(pupil_id=PUPIL, key_id=f"pupil/{PUPIL}"),
    e.LegalHoldPlaced(pupil_id=PUPIL, reason="bezwaarprocedure"),
    e.LegalHoldReleased(pupil_id=PUPIL),
    e.SubjectRequestReceived(pupil_id=PUPIL, request_id=REQUEST, kind=e.SubjectRequestKind.INSPECT,
                             requested_by=e.ConsentGiver.PARENT, due_on=date(2026, 10, 1)),
    e.SubjectRequestAnswered(pupil_id=PUPIL, request_id=REQUEST, outcome="export sent"),
    e.DataLeaked(leak_id=LEAK, nature="dossier export mailed to wrong school", discovered_at=MOMENT,
                 pupil_ids=[PUPIL], dossier_ids=[DOSSIER]),
    e.PupilDetailsCorrected(pupil_id=PUPIL, request_id=REQUEST, name="Sanne de Bakker",
                            parent_emails=["ouder@example.nl"]),
    e.ParentsNotified(leak_id=LEAK, pupil_id=PUPIL, recipients=2),
    e.AdminAppointed(staff_id=STAFF, acted_by=e.ActedBy(actor="operator:beheer", client="samenveilig-auth")),
    e.AdminRemoved(staff_id=STAFF, acted_by=e.ActedBy(actor="operator:beheer", client="samenveilig-auth")),
    e.OidcClientRegistered(client_id="3f9a0c1d2e4b", name="Console", grant_types=["client_credentials"],
                           scopes=["retention:read"],
                           acted_by=e.ActedBy(actor="operator:beheer", client="samenveilig-auth")),
    e.OidcClientRevoked(client_id="3f9a0c1d2e4b",
                        acted_by=e.ActedBy(actor="operator:beheer", client="samenveilig-auth")),
    e.PupilCategoryErased(pupil_id=PUPIL, category=e.DataCategory.MEDICAL, key_id=f"pupil/{PUPIL}/medical",
                          acted_by=e.ActedBy(actor=str(STAFF), client="console")),
    e.LeakMailingApproved(leak_id=LEAK, recipients=60, acted_by=e.ActedBy(actor=str(STAFF), client="console")),
    e.LeakReportOverdue(leak_id=LEAK, deadline=MOMENT),
    e.LeakNotReportable(leak_id=LEAK, reason="versleutelde laptop, sleutel niet gelekt"),
    e.RegulatorNotified(leak_id=LEAK, reported_at=MOMENT, reference="AP-2026-0001"),
]


def sample(event_type: str) -> e.Event:
    return next(s for s in SAMPLES if s.event_type == event_type)
