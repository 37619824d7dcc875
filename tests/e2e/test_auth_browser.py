"""A new staff member goes through the Kindkans pages in a real browser (Debian's chromium,
driven by Playwright): invitation -> password -> QR enrolment -> login with a code -> logout."""

from __future__ import annotations

import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest
import uvicorn

from deploy.localbroker import free_port
from services.auth.api import create_app
from services.auth.bootstrap import build, build_relay, build_runner
from services.auth.domain import STEP_SECONDS, time_step
from services.auth.settings import AuthSettings
from shared.contracts import events as e
from shared.kafka.producer import EventPublisher, make_producer
from tests.support import wait_until

CHROMIUM = "/usr/bin/chromium"
BRANCH = uuid.UUID("00000000-0000-4000-8000-0000000000f1")
PASSWORD = "fiets-regen-haven-lantaarn"


class RealTimeAhead:
    """The real time, plus the jumps the test makes instead of waiting (the user logs in a step later)."""

    def __init__(self) -> None:
        self.ahead = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.ahead


@pytest.fixture
def auth_site(broker, topic_prefix, master_key, tmp_path, smtp_server) -> Iterator[tuple[str, object]]:
    port = free_port()
    settings = AuthSettings(kafka_bootstrap_servers=broker.bootstrap, topic_prefix=topic_prefix,
                            database_url=f"sqlite:///{tmp_path / 'auth.sqlite'}",
                            keystore_url=f"sqlite:///{tmp_path / 'keys.sqlite'}", master_key=master_key,
                            consumer_group=f"{topic_prefix}auth", smtp_port=smtp_server.port,
                            auth_url=f"http://127.0.0.1:{port}", cookie_secure=False)
    deps = build(settings, clock=RealTimeAhead())
    workers = [build_runner(deps), build_relay(deps)]
    server = uvicorn.Server(uvicorn.Config(create_app(deps), host="127.0.0.1", port=port, log_config=None,
                                           access_log=False))
    threads = [threading.Thread(target=w.run, daemon=True) for w in [*workers, server]]
    for thread in threads:
        thread.start()
    wait_until(lambda: server.started, message="the auth pages to be served")
    yield f"http://127.0.0.1:{port}", deps
    server.should_exit = True
    for worker in workers:
        worker.stop_event.set()
    for thread in threads:
        thread.join(timeout=15)


@pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                    reason="Debian's chromium is installed by deploy/test.sh (in CI this test never skips)")
def test_a_new_staff_member_enrols_logs_in_with_a_code_and_logs_out(auth_site, smtp_server, broker, tmp_path):
    from playwright.sync_api import sync_playwright

    base, deps = auth_site
    email = "nieuwe.ib@regenboog.example"
    publisher = EventPublisher(make_producer(broker.bootstrap, "registry-under-test"))
    publisher.publish(deps.codec.encode(e.StaffJoined(branch_id=BRANCH, staff_id=uuid.uuid4(), role=e.StaffRole.IB_ER,
                                                      name="Nieuwe IB'er", email=email),
                                        event_id=str(uuid.uuid4()), recorded_at=datetime.now(UTC)))
    publisher.close()
    mail = wait_until(lambda: smtp_server.messages, message="the invitation mail")[0]
    link = re.search(r"http://\S+/uitnodiging/\S+", mail.get_content()).group(0)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page()
        page.goto(link)
        page.fill("#wachtwoord", PASSWORD)
        page.fill("#herhaling", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("text=Authenticator-app koppelen")
        assert page.locator(".qr svg").count() == 1, "the QR code is on the page"
        # What an authenticator app does after scanning: take the secret, compute the code.
        secret = page.inner_text("#totp-secret").strip()
        totp = pyotp.TOTP(secret)
        page.fill("#code", totp.at(deps.clock.now()))
        enrolled_step = time_step(deps.clock.now())
        page.click("button[type=submit]")
        page.wait_for_selector("#recovery-codes")
        assert page.locator("#recovery-codes li").count() == 10
        page.screenshot(path=str(tmp_path / "herstelcodes.png"))

        page.goto(f"{base}/inloggen")
        page.fill("#gebruikersnaam", email)
        page.fill("#wachtwoord", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("text=Code invoeren")
        # The enrolment code's time step cannot be used again (no replay): the next step's code,
        # as the app shows it 30 seconds later (the service's clock jumps instead of the test waiting).
        deps.clock.ahead += timedelta(seconds=STEP_SECONDS)
        assert time_step(deps.clock.now()) > enrolled_step
        page.fill("#code", totp.at(deps.clock.now()))
        page.click("button[type=submit]")
        page.wait_for_selector("#ingelogd-als")
        assert page.inner_text("#ingelogd-als") == email
        token = next(c["value"] for c in page.context.cookies() if c["name"] == "sv_session")
        with deps.engine.begin() as connection:
            assert deps.service.introspect(connection, token)["active"] is True

        page.click("text=Uitloggen")
        page.wait_for_selector("text=U bent uitgelogd.")
        page.screenshot(path=str(tmp_path / "uitgelogd.png"))
        browser.close()
    with deps.engine.begin() as connection:
        assert deps.service.introspect(connection, token) == {"active": False}
    shutil.copy(tmp_path / "herstelcodes.png", "/tmp/auth-herstelcodes.png")
