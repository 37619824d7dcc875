"""The audit's timeline and who-could-see on generated log entries: nothing about the dossier is
left out, a contact assignment names the new contact, every time is printed in UTC, and the
school's own references find the ids."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from services.audit import cli
from services.registry.domain import dossier_id, pupil_id, staff_id
from shared.contracts import events as e
from shared.kafka.log import Entry
from tests.support import log_entries

SUMMER = timezone(timedelta(hours=2))
START = datetime(2026, 9, 1, 10, tzinfo=SUMMER)
BRANCH = uuid.uuid4()
IB_ER, TEACHER = staff_id(BRANCH, "emp-1043"), staff_id(BRANCH, "emp-0877")
PUPIL, DOSSIER = pupil_id(BRANCH, "lln-2041"), dossier_id(BRANCH, "hv-2026-0001")
ADDRESS = e.Address(street="Schiekade", house_number="12", postcode="3032 AJ", city="Rotterdam")


def entries(*events: e.Event) -> list[Entry]:
    return log_entries(START, *events)


LOG = entries(
    e.BranchFounded(branch_id=BRANCH, vestigingscode="12AB00", name="OBS De Regenboog", address=ADDRESS,
                    phone="+31101234567", wijknetwerk="Noord"),
    e.StaffJoined(branch_id=BRANCH, staff_id=TEACHER, role=e.StaffRole.LEERKRACHT, name="A", email="a@school.example"),
    e.StaffJoined(branch_id=BRANCH, staff_id=IB_ER, role=e.StaffRole.IB_ER, name="B", email="b@school.example"),
    e.AccessGranted(staff_id=IB_ER, branch_id=BRANCH, rule="ib_er-sees-branch"),
    e.PupilEnrolled(branch_id=BRANCH, pupil_id=PUPIL, name="C", date_of_birth="2015-03-01",
                    parent_emails=["ouder@example.nl"]),
    e.DossierOpened(branch_id=BRANCH, dossier_id=DOSSIER, pupil_id=PUPIL, contact_staff_id=TEACHER, summary="S"),
    e.StaffDeparted(branch_id=BRANCH, staff_id=TEACHER),
    e.ContactPersonMissing(branch_id=BRANCH, dossier_id=DOSSIER, previous_contact_staff_id=TEACHER),
    e.DossierContactAssigned(branch_id=BRANCH, dossier_id=DOSSIER, contact_staff_id=IB_ER, reason="reported"),
    e.BranchBrinChanged(branch_id=BRANCH, previous_vestigingscode="12AB00", vestigingscode="12AB01"),
    e.PupilDataPurged(pupil_id=PUPIL, key_id="k"),
)


@pytest.fixture
def audit(monkeypatch):
    monkeypatch.setattr(cli, "load_log", lambda options, **_: cli.Log({}, LOG, [], 0.0))

    def run(*args: str) -> dict:
        done = CliRunner().invoke(cli.app, ["--json", *args], catch_exceptions=False)
        assert done.exit_code == 0, done.output
        return json.loads(done.stdout)

    return run


def test_the_timeline_leaves_out_nothing_about_the_dossier_and_names_the_new_contact(audit):
    rows = audit("timeline", str(DOSSIER))["timeline"]
    assert [row["type"] for row in rows] == [
        "AccessGranted", "DossierOpened", "StaffDeparted", "ContactPersonMissing", "DossierContactAssigned",
        "BranchBrinChanged", "PupilDataPurged"]
    assigned = rows[4]
    assert assigned["staff_id"] == str(IB_ER) and str(IB_ER) in assigned["detail"]
    assert rows[3]["staff_id"] == str(TEACHER)
    assert "12AB00 -> 12AB01" in rows[5]["detail"]


def test_every_time_is_utc(audit):
    rows = audit("timeline", str(DOSSIER))["timeline"]
    assert {row["recorded_at"][-6:] for row in rows} == {"+00:00"}
    assert {row["effective_at"][-6:] for row in rows} == {"+00:00"}
    assert rows[0]["recorded_at"] == "2026-09-01 08:03:00+00:00"
    seen = audit("who-could-see", str(DOSSIER), "--at", "2026-09-01T10:09+02:00")
    assert seen["at"].endswith("+00:00")
    assert seen["could_see"] and {row["since"][-6:] for row in seen["could_see"]} == {"+00:00"}
    table = CliRunner().invoke(cli.app, ["timeline", str(DOSSIER)], catch_exceptions=False, env={"COLUMNS": "200"})
    assert "vastgelegd (UTC)" in table.stdout and "van kracht (UTC)" in table.stdout
    assert "08:03" in table.stdout and "10:03" not in table.stdout


def test_the_schools_own_references_find_the_ids(audit):
    assert audit("timeline", "--ref", "12AB00/hv-2026-0001")["dossier_id"] == str(DOSSIER)
    # Under the branch's new code too (its old code stays an alias).
    assert audit("who-could-see", "--ref", "12AB01/hv-2026-0001")["dossier_id"] == str(DOSSIER)
    assert audit("what-could-see", "--ref", "12AB00/emp-1043", "--at", "2026-09-01T10:09+02:00")["staff_id"] \
        == str(IB_ER)
    unknown = CliRunner().invoke(cli.app, ["timeline", "--ref", "12AB00/hv-none"])
    assert unknown.exit_code == 2 and "no dossier 'hv-none' at 12AB00" in unknown.output
    neither = CliRunner().invoke(cli.app, ["timeline"])
    assert neither.exit_code == 2
