"""The audit's list of who did what (services/audit/actions.py), on generated log entries."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from services.audit.actions import UNKNOWN, actions
from shared.contracts import events as e
from shared.kafka.log import Entry
from tests.support import log_entries

START = datetime(2026, 9, 1, 8, tzinfo=UTC)
BRANCH = uuid.uuid4()


def entries(*events: e.Event) -> list[Entry]:
    return log_entries(START, *events)


def test_actions_are_listed_per_actor_and_per_pupil_with_client_and_on_behalf_of():
    ib_er, extern, fg = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    dossier, pupil, other_pupil, leak = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    by_backend = e.ActedBy(actor=str(ib_er), client="kindkans-backend", on_behalf_of=str(ib_er))
    by_fg = e.ActedBy(actor=str(fg), client="console")
    log = entries(
        e.DossierOpened(branch_id=BRANCH, dossier_id=dossier, pupil_id=pupil, contact_staff_id=ib_er, summary="S"),
        # A standing rule's grant and a departure's revocation are not anyone's action.
        e.AccessGranted(staff_id=ib_er, branch_id=BRANCH, rule="ib_er-sees-branch"),
        e.AccessGranted(staff_id=extern, dossier_id=dossier, rule="explicit-grant", acted_by=by_backend),
        e.AccessRevoked(staff_id=extern, dossier_id=dossier, rule="explicit-grant", reason="staff departed"),
        # From before actors were recorded: listed, its actor unknown.
        e.AccessGranted(staff_id=extern, dossier_id=dossier, rule="explicit-grant"),
        e.LegalHoldPlaced(pupil_id=other_pupil, reason="Bezwaar", acted_by=by_fg),
        e.DataLeaked(leak_id=leak, nature="Lijst kwijt", discovered_at=START, dossier_ids=[dossier], acted_by=by_fg),
        e.ParentsNotified(leak_id=leak, pupil_id=pupil, recipients=2),
        e.RegulatorNotified(leak_id=leak, reported_at=START, reference="AP-1", acted_by=by_fg),
        e.FactorResetApproved(staff_id=extern, reset_id=uuid.uuid4(), approved_by=fg),
        e.CredentialRevoked(client_id="0123456789ab", acted_by="operator:beheer"),
    )
    everything = actions(log)
    assert [row.type for row in everything] == ["AccessGranted", "AccessGranted", "LegalHoldPlaced", "DataLeaked",
                                                "RegulatorNotified", "FactorResetApproved", "CredentialRevoked"]
    assert everything[1].actor == UNKNOWN and everything[1].client == UNKNOWN
    assert [(row.about, row.client) for row in actions(log, actor="operator:beheer")] == [
        ("credential/0123456789ab", "samenveilig-credentials")]
    mine = actions(log, actor=str(ib_er))
    assert [(row.client, row.on_behalf_of, row.pupil_ids) for row in mine] == [
        ("kindkans-backend", str(ib_er), (pupil,))]
    assert [row.type for row in actions(log, actor=str(fg))] == [
        "LegalHoldPlaced", "DataLeaked", "RegulatorNotified", "FactorResetApproved"]
    # The leak named the dossier: its later steps concern that dossier's pupil too.
    assert [row.type for row in actions(log, pupil=pupil)] == [
        "AccessGranted", "AccessGranted", "DataLeaked", "RegulatorNotified"]
    assert [row.type for row in actions(log, pupil=other_pupil)] == ["LegalHoldPlaced"]


def test_a_confidentiality_agreement_is_listed_as_the_action_of_who_recorded_it():
    ib_er, intern = uuid.uuid4(), uuid.uuid4()
    acted_by = e.ActedBy(actor=str(ib_er), client="kindkans-backend", on_behalf_of=str(ib_er))
    rows = actions(entries(
        e.ConfidentialityAgreementRecorded(staff_id=intern, version="v1", signed_on=date(2026, 9, 1),
                                           valid_until=date(2027, 1, 31), acted_by=acted_by),
        e.ConfidentialityAgreementRevoked(staff_id=intern, version="v1", reason="r", acted_by=acted_by)),
        actor=str(ib_er))
    assert [(r.type, r.client, r.about) for r in rows] == [
        ("ConfidentialityAgreementRecorded", "kindkans-backend", f"staff/{intern}"),
        ("ConfidentialityAgreementRevoked", "kindkans-backend", f"staff/{intern}")]
