"""Snapshots of the folded access state at known log positions, so a replay can resume instead
of starting over. Keyed by a version derived from the rules' source and the event schema
versions: a changed `evolve` (or contract) never reuses a stale snapshot."""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any
from uuid import UUID

from services.access import domain
from services.access.domain import AccessState, Agreement, Dossier, Grant, StaffMember
from shared.contracts.events import EVENT_TYPES, StaffRole

Positions = dict[tuple[str, int], int]


def snapshot_version() -> str:
    material = inspect.getsource(domain) + json.dumps({k: v.schema_version for k, v in EVENT_TYPES.items()})
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def _path(directory: Path, prefix: str) -> Path:
    scope = hashlib.sha256(prefix.encode()).hexdigest()[:8]
    return directory / f"access-{scope}-{snapshot_version()}.json"


def _encode(value: Any) -> Any:
    if isinstance(value, UUID | datetime):
        return value.isoformat() if isinstance(value, datetime) else str(value)
    if isinstance(value, StaffRole):
        return value.value
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    return value


def save(directory: Path, prefix: str, state: AccessState, positions: Positions) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "version": snapshot_version(),
        "positions": [[topic, partition, offset] for (topic, partition), offset in sorted(positions.items())],
        "staff": [{k: _encode(v) for k, v in asdict(m).items()} for m in state.staff.values()],
        "dossiers": [{k: _encode(v) for k, v in asdict(d).items()} for d in state.dossiers.values()],
        "wijknetwerken": {str(k): v for k, v in state.wijknetwerken.items()},
        "grants": [{k: _encode(v) for k, v in asdict(g).items()} for g in state.grants.values()],
        "agreements": [{k: _encode(v) for k, v in asdict(a).items()} for a in state.agreements.values()],
    }
    path = _path(directory, prefix)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(document))
    temporary.replace(path)  # never a half-written snapshot
    return path


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def load(directory: Path, prefix: str) -> tuple[AccessState, Positions] | None:
    path = _path(directory, prefix)
    if not path.exists():
        return None
    document = json.loads(path.read_text())
    if document.get("version") != snapshot_version():
        return None
    staff = {UUID(m["staff_id"]): StaffMember(
        staff_id=UUID(m["staff_id"]), branch_id=UUID(m["branch_id"]) if m["branch_id"] else None,
        role=StaffRole(m["role"]) if m["role"] else None, joined_at=_time(m["joined_at"]),
        role_since=_time(m["role_since"]), access_until=_time(m["access_until"]),
        wijknetwerken=tuple(m["wijknetwerken"]), departed_at=_time(m["departed_at"]),
        departure_recorded_at=_time(m["departure_recorded_at"])) for m in document["staff"]}
    dossiers = {UUID(d["dossier_id"]): Dossier(UUID(d["dossier_id"]), UUID(d["branch_id"]),
                                               UUID(d["contact_staff_id"]), _time(d["contact_since"]),  # type: ignore[arg-type]
                                               d["open"], _time(d["opened_at"]),  # type: ignore[arg-type]
                                               UUID(d["pupil_id"]) if d.get("pupil_id") else None)
                for d in document["dossiers"]}
    grants = {(UUID(g["staff_id"]), UUID(g["dossier_id"])): Grant(
        UUID(g["staff_id"]), UUID(g["dossier_id"]), _time(g["granted_at"]), _time(g["until"]),  # type: ignore[arg-type]
        _time(g["revoked_at"])) for g in document["grants"]}
    agreements = {UUID(a["staff_id"]): Agreement(
        UUID(a["staff_id"]), a["version"], _time(a["valid_from"]), _time(a["valid_until"]),  # type: ignore[arg-type]
        _time(a["revoked_at"])) for a in document.get("agreements", [])}
    state = AccessState(staff=MappingProxyType(staff), dossiers=MappingProxyType(dossiers),
                        wijknetwerken=MappingProxyType({UUID(k): v for k, v in document["wijknetwerken"].items()}),
                        grants=MappingProxyType(grants), agreements=MappingProxyType(agreements))
    positions = {(topic, partition): offset for topic, partition, offset in document["positions"]}
    return state, positions
