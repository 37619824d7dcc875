"""The purge forecast (`GET /v1/purges/scheduled`): what goes when, with category and hold,
soonest first, paged, for a branch or a board; an FG sees her own board only, a service with
retention:read everything."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

from sqlalchemy import insert

from services.retention import store
from services.retention.api import create_app
from services.retention.bootstrap import build
from services.retention.settings import RetentionSettings
from tests.support import RETENTION_SCOPES, TOKENS, api_client, fg_headers


def test_the_forecast_lists_scheduled_purges_with_holds_paged_per_branch_and_board(tmp_path, master_key):
    deps = build(RetentionSettings(database_url=f"sqlite:///{tmp_path / 'retention.sqlite'}",
                                   keystore_url=f"sqlite:///{tmp_path / 'keys.sqlite'}", master_key=master_key))
    client = api_client(create_app(deps), "retention", RETENTION_SCOPES)
    today = deps.service.today()
    ours, sister, theirs = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    pupils = []
    with deps.engine.begin() as connection:
        connection.execute(insert(store.branches), [{"branch_id": str(ours), "bevoegd_gezag": "11111"},
                                                    {"branch_id": str(sister), "bevoegd_gezag": "11111"},
                                                    {"branch_id": str(theirs), "bevoegd_gezag": "22222"}])
        for number, (branch, days, hold) in enumerate([(ours, 30, False), (sister, 10, True), (theirs, 20, False),
                                                       (ours, -5, True), (ours, 400, False)]):
            pupil = uuid.uuid4()
            pupils.append(pupil)
            connection.execute(insert(store.pupils).values(
                pupil_id=str(pupil), branch_id=str(branch), date_of_birth=date(2015, 1, 1), enrolled=False,
                left_on=today - timedelta(days=700), has_swv_dossier=number == 0,
                category="swv_dossier" if number == 0 else "leerlingdossier", due_on=today + timedelta(days=days),
                legal_hold=hold, hold_reason="Bezwaar" if hold else None))
        # Still enrolled: nothing scheduled.
        connection.execute(insert(store.pupils).values(
            pupil_id=str(uuid.uuid4()), branch_id=str(ours), date_of_birth=date(2015, 1, 1), enrolled=True,
            has_swv_dossier=False, legal_hold=False))

    everything = client.get("/v1/purges/scheduled")
    assert everything.status_code == 200, everything.text
    rows = everything.json()["scheduled"]
    assert [r["pupil_id"] for r in rows] == [str(pupils[i]) for i in (3, 1, 2, 0, 4)]
    held = rows[0]
    assert held["legal_hold"] is True and held["days_left"] == -5 and "hold_reason" not in held
    assert rows[3]["category"] == "swv_dossier" and rows[3]["due_on"] == (today + timedelta(days=30)).isoformat()
    assert everything.json()["next_after"] is None

    # Paged: two at a time, each page picking up where the last ended.
    seen, after = [], None
    while True:
        page = client.get("/v1/purges/scheduled", params={"limit": 2, **({"after": after} if after else {})}).json()
        seen += [r["pupil_id"] for r in page["scheduled"]]
        after = page["next_after"]
        if after is None:
            break
    assert seen == [r["pupil_id"] for r in rows]

    branch = client.get("/v1/purges/scheduled", params={"branch_id": str(ours)}).json()["scheduled"]
    assert [r["pupil_id"] for r in branch] == [str(pupils[i]) for i in (3, 0, 4)]
    board = client.get("/v1/purges/scheduled", params={"bevoegd_gezag": "11111"}).json()["scheduled"]
    assert [r["pupil_id"] for r in board] == [str(pupils[i]) for i in (3, 1, 0, 4)]

    # The FG sees her own board, and is refused another's branch or board.
    fg = fg_headers(uuid.uuid4(), ours)
    mine = client.get("/v1/purges/scheduled", headers=fg).json()["scheduled"]
    assert [r["pupil_id"] for r in mine] == [str(pupils[i]) for i in (3, 1, 0, 4)]
    for params in ({"branch_id": str(theirs)}, {"bevoegd_gezag": "22222"}):
        refused = client.get("/v1/purges/scheduled", params=params, headers=fg)
        assert refused.status_code == 403 and refused.json()["reason"] == "other-board"
    assert client.get("/v1/purges/scheduled", params={"branch_id": str(sister)}, headers=fg).status_code == 200
    # A teacher sees nothing; without retention:read nobody gets in.
    teacher = TOKENS.headers(str(uuid.uuid4()), RETENTION_SCOPES, "retention", role="leerkracht",
                             branch_id=str(ours))
    assert client.get("/v1/purges/scheduled", headers=teacher).json()["scheduled"] == []
    no_scope = TOKENS.headers("svc", "retention:write", "retention")
    assert client.get("/v1/purges/scheduled", headers=no_scope).status_code == 403
    assert client.get("/v1/purges/scheduled", params={"after": "nonsense"}).status_code == 422
    both = client.get("/v1/purges/scheduled", params={"branch_id": str(ours), "bevoegd_gezag": "11111"})
    assert both.status_code == 422
