"""The auth service's SWV admins and second factors beyond TOTP, over the real broker, a real
database and real SMTP: the four-eyes reset of a lost factor, re-invitations, a second join, and
forged passkey answers. (Split from test_auth.py, whose fixtures and helpers it uses, so that the
suite's workers share the auth tests.)"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pyotp
import pytest
from sqlalchemy import select

from services.auth import store
from shared.contracts import events as e
from shared.contracts.topics import Topic
from tests.integration.test_auth import (
    BRANCH,
    PASSWORD,
    Auth,
    Enrolled,
    auth_events,
    enrol,
    introspect,
    login,
    running_auth,
)
from tests.support import read_all, wait_until


@pytest.fixture
def auth(broker, topic_prefix, database_url, master_key, tmp_path, smtp_server) -> Iterator[Auth]:
    with running_auth(broker, topic_prefix, database_url, master_key, tmp_path, smtp_server) as harness:
        yield harness


def appoint(auth: Auth, *people: Enrolled) -> None:
    with auth.deps.engine.begin() as connection:
        for person in people:
            store.grant_admin(connection, str(person.staff_id), datetime.now(UTC))


def test_a_lost_second_factor_is_reset_by_two_admins_and_never_by_one(auth):
    lost, first, second = enrol(auth), enrol(auth), enrol(auth)
    appoint(auth, first, second)
    phone, status = login(auth, lost, code=lost.recovery_codes[0])
    assert status == 303
    old_session = phone.cookies.get("sv_session")
    # Not an admin: no page, no request.
    assert phone.get("/beheer").status_code == 403
    assert phone.post("/beheer/herstel", data={"gebruikersnaam": first.username,
                                               "reden": "Ik wil even proberen"}).status_code == 403

    asker, status = login(auth, first, code=first.recovery_codes[0])
    assert status == 303
    reason = "Telefoon gestolen, identiteit gecontroleerd aan de balie"
    asked = asker.post("/beheer/herstel", data={"gebruikersnaam": lost.username, "reden": reason})
    assert asked.status_code == 200 and "tweede beheerder" in asked.text
    reset_id = re.search(r'action="/beheer/herstel/([0-9a-f-]{36})"', second_admin_page(auth, second)).group(1)
    # The one who asked cannot approve; nobody approves a reset of their own account.
    own = asker.post(f"/beheer/herstel/{reset_id}")
    assert own.status_code == 422 and "niet degene die het indiende" in own.text
    assert asker.post("/beheer/herstel", data={"gebruikersnaam": first.username,
                                               "reden": "mijn eigen telefoon kwijt"}).status_code == 422
    # The lost factor still works until a second admin approves.
    assert introspect(auth, old_session)["active"] is True

    approver, _ = login(auth, second, code=second.recovery_codes[0])
    approved = approver.post(f"/beheer/herstel/{reset_id}")
    assert approved.status_code == 200 and "Goedgekeurd" in approved.text
    assert approver.post(f"/beheer/herstel/{reset_id}").status_code == 422, "approved once"
    # The old factor and every session are gone; the recovery codes too.
    assert introspect(auth, old_session)["active"] is False
    assert login(auth, lost, code=lost.recovery_codes[1])[1] == 401
    # The staff member links a new app through the mailed single-use link.
    mail = wait_until(lambda: [m for m in auth.smtp.messages if m["X-Envelope-To"] == lost.username
                               and "nieuwe tweede factor" in m["Subject"]], message="the reset mail")[0]
    link = urlsplit(re.search(r"http://\S+/koppelen/\S+", mail.get_content()).group(0)).path
    browser = auth.client()
    page = browser.get(link)
    assert page.status_code == 200 and "Authenticator-app koppelen" in page.text
    secret = re.search(r'id="totp-secret" class="geheim">([A-Z2-7]+)<', page.text).group(1)
    done = browser.post("/tweestaps", data={"code": pyotp.TOTP(secret).now()})
    assert done.status_code == 200
    codes = re.findall(r"<li>([A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4})</li>", done.text)
    assert login(auth, lost, code=codes[0])[1] == 303
    used = auth.client().get(link)
    assert used.status_code == 401 and "Authenticator-app koppelen" not in used.text, "the link works once"

    # Every step is an event; the reason travels sealed.
    def reset_events() -> set[str]:
        return {r.type if r.type != "SessionEnded" else r.event.reason for r in auth_events(auth)}

    wait_until(lambda: {"FactorResetRequested", "FactorResetApproved", "second factor reset"} <= reset_events(),
               message="the reset's events", timeout_s=20)
    requested = next(r.event for r in auth_events(auth) if r.type == "FactorResetRequested")
    assert requested.requested_by == first.staff_id and requested.reason == reason
    approval = next(r.event for r in auth_events(auth) if r.type == "FactorResetApproved")
    assert approval.approved_by == second.staff_id
    raw = b"".join(r.value or b"" for r in read_all(auth.bootstrap, auth.deps.topics(Topic.AUTH_EVENTS)))
    assert reason.encode() not in raw


def second_admin_page(auth: Auth, admin: Enrolled) -> str:
    client, status = login(auth, admin, code=admin.recovery_codes[9])
    assert status == 303
    return client.get("/beheer").text


def test_an_admin_re_invites_a_half_enrolled_account_but_not_an_enrolled_one(auth):
    admin, enrolled = enrol(auth), enrol(auth)
    appoint(auth, admin)
    staff_id = uuid.uuid4()
    username = f"{staff_id.hex[:8]}@school.example"
    auth.publish(e.StaffJoined(branch_id=BRANCH, staff_id=staff_id, role=e.StaffRole("leerkracht"), name="N",
                               email=username))
    auth.invitation_link(username)  # the first invitation, lost by the staff member
    client, _ = login(auth, admin, code=admin.recovery_codes[0])
    sent = client.post("/beheer/uitnodigen", data={"gebruikersnaam": username})
    assert sent.status_code == 200 and "nieuwe uitnodiging" in sent.text
    invitations = wait_until(lambda: [m for m in auth.smtp.messages if m["X-Envelope-To"] == username]
                             if len([m for m in auth.smtp.messages if m["X-Envelope-To"] == username]) == 2 else [],
                             message="the second invitation")
    first, second = (urlsplit(re.search(r"http://\S+/uitnodiging/\S+", m.get_content()).group(0)).path
                     for m in invitations)
    # The old link is dead, the new one works.
    assert auth.client().post(first, data={"wachtwoord": PASSWORD, "herhaling": PASSWORD}).status_code == 422
    assert auth.client().post(second, data={"wachtwoord": PASSWORD, "herhaling": PASSWORD}).status_code == 200
    refused = client.post("/beheer/uitnodigen", data={"gebruikersnaam": enrolled.username})
    assert refused.status_code == 422 and "herstel" in refused.text


def test_a_second_join_of_an_active_account_ends_its_sessions(auth):
    person = enrol(auth)
    client, status = login(auth, person, code=person.recovery_codes[0])
    token = client.cookies.get("sv_session")
    assert status == 303 and introspect(auth, token)["active"] is True
    auth.publish(e.StaffJoined(branch_id=BRANCH, staff_id=person.staff_id, role=e.StaffRole("leerkracht"),
                               name="N", email=person.username))
    wait_until(lambda: introspect(auth, token)["active"] is False, message="the old session to end")
    ended = wait_until(lambda: [r for r in auth_events(auth) if r.type == "SessionEnded"], message="SessionEnded")
    assert ended[0].event.reason == "re-invited"


def test_a_forged_passkey_answer_is_refused_and_counted_like_a_wrong_code(auth):
    person = enrol(auth)
    client = auth.client()
    assert client.post("/inloggen", data={"gebruikersnaam": person.username, "wachtwoord": PASSWORD},
                       follow_redirects=False).status_code == 303
    # The options name no credentials (passkeys are discoverable): the same for every account.
    options = client.post("/inloggen/code/passkey-opties")
    assert options.status_code == 200 and options.json().get("allowCredentials", []) == []
    assert options.json()["userVerification"] == "required"
    forged = {"id": "AAAA", "rawId": "AAAA", "type": "public-key",
              "response": {"clientDataJSON": "eyJjaGFsbGVuZ2UiOiAiQUFBQSJ9", "authenticatorData": "AAAA",
                           "signature": "AAAA"}}
    refused = client.post("/inloggen/code/passkey", json={"credential": forged})
    assert refused.status_code == 401 and "code klopt niet" in refused.json()["message"]
    assert client.post("/inloggen/code/passkey", content=b"{" * 20_000,
                       headers={"Content-Type": "application/json"}).status_code == 401
    failed = wait_until(lambda: [r for r in auth_events(auth) if r.type == "LoginFailed"], message="LoginFailed")
    assert failed[-1].event.reason == "bad-passkey"
    with auth.deps.engine.connect() as connection:
        counted = {row.key: row._mapping["count"] for row in connection.execute(select(store.failures))}
    assert counted[f"code|account|{person.staff_id}"] == 1


def test_the_operators_changes_to_clients_and_admins_are_events_naming_the_operator(auth):
    """NEN 7513 for the operator's hand (`samenveilig-auth`): a client registered or revoked and
    an admin appointed or removed are events on the log naming who ran the command (never a
    secret), written in the change's own transaction."""
    import getpass
    import json

    from typer.testing import CliRunner

    from services.auth.cli import app as auth_cli

    person = enrol(auth, "ib_er")
    env = {"SAMENVEILIG_DATABASE_URL": auth.settings.database_url,
           "SAMENVEILIG_KEYSTORE_URL": auth.settings.keystore_url,
           "SAMENVEILIG_MASTER_KEY": auth.settings.master_key.get_secret_value(),
           "SAMENVEILIG_TOPIC_PREFIX": auth.settings.topic_prefix,
           "SAMENVEILIG_SIGNING_DIR": str(auth.settings.signing_dir),
           "KAFKA_BOOTSTRAP_SERVERS": auth.bootstrap}

    def run(*args: str) -> str:
        result = CliRunner().invoke(auth_cli, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.stdout

    added = json.loads(run("clients", "add", "--name", "Console", "--grant", "client_credentials",
                           "--scope", "retention:read"))
    run("clients", "revoke", added["client_id"])
    run("admins", "grant", person.username)
    run("admins", "revoke", person.username)
    operator = e.ActedBy(actor=f"operator:{getpass.getuser()}", client="samenveilig-auth")
    kinds = ("OidcClientRegistered", "OidcClientRevoked", "AdminAppointed", "AdminRemoved")

    def operator_events() -> list | None:
        found = [x for x in auth_events(auth) if x.type in kinds]
        return found if len(found) == 4 else None

    found = wait_until(operator_events, message="the operator's events")
    assert sorted(x.type for x in found) == sorted(kinds)
    assert {x.event.acted_by for x in found} == {operator}
    registered = next(x.event for x in found if x.type == "OidcClientRegistered")
    assert (registered.client_id, registered.scopes) == (added["client_id"], ["retention:read"])
    raw = b"".join(r.value for r in read_all(auth.bootstrap, auth.deps.topics(Topic.AUTH_EVENTS)))
    assert added["client_secret"].encode() not in raw
