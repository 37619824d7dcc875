"""samenveilig-audit: the audit team's questions answered from the event log alone.

    samenveilig-audit replay [--access-db URL] [--registry-db URL] [--auth-db URL]
    samenveilig-audit who-could-see DOSSIER --at 2026-03-01T12:00+01:00 [--axis valid|record]
                                    [--action view|change]
    samenveilig-audit what-could-see STAFF --at ... [--axis ...] [--action view|change]
    samenveilig-audit timeline DOSSIER
    samenveilig-audit actions [--actor STAFF_OR_CLIENT] [--pupil PUPIL]
    (instead of an id: --ref VESTIGINGSCODE/REF, the school's own reference; --actor-ref, --pupil-ref)
    samenveilig-audit verify [--access-db URL] [--registry-db URL]
    samenveilig-audit report DOSSIER --from ... --to ... --out rapport.html

The broker comes from KAFKA_BOOTSTRAP_SERVERS (or --bootstrap). Personal data is not needed to
answer these questions, so by default no key store is used and names read as "verwijderd".
Only events signed by their topic's owner are folded; the services' public keys are read from
SAMENVEILIG_SIGNING_PUBLIC_DIR (or SAMENVEILIG_SIGNING_DIR, default .data/signing).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import reduce
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.table import Table

from services.access import projection as access_projection
from services.access.domain import INITIAL_STATE as ACCESS_INITIAL
from services.access.domain import evolve as access_evolve
from services.access.history import (
    Axis,
    ChangeRights,
    state_at,
    timeline,
    what_could_change,
    what_could_see,
    who_could_change,
    who_could_see,
)
from services.audit import refs, snapshot
from services.audit import verify as checks
from services.audit.actions import actions
from services.auth import domain as auth_domain
from services.auth import projection as auth_projection
from services.registry import projection as registry_projection
from services.registry.domain import FOLDED_TYPES as REGISTRY_FOLDED
from services.registry.domain import INITIAL_STATE as REGISTRY_INITIAL
from services.registry.domain import evolve as registry_evolve
from shared.contracts.envelope import EventCodec
from shared.contracts.events import (
    BranchBrinChanged,
    ConfidentialityAgreementRecorded,
    ContactPersonMissing,
    DossierContactAssigned,
    DossierViewed,
    PupilDataPurged,
)
from shared.contracts.topics import EVENT_TOPICS, Topic, TopicNames, dead_letter_topic
from shared.crypto import InMemoryKeyStore, TrustedSigners
from shared.kafka.log import Entry, LogRecord, decode_all, in_stream_order, read_topics

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
console = Console(stderr=True)


@dataclass
class Options:
    bootstrap: str
    prefix: str
    as_json: bool
    signing_public_dir: Path = Path(".data/signing")


def _options(ctx: typer.Context) -> Options:
    options: Options = ctx.obj
    return options


@app.callback()
def main(ctx: typer.Context,
         bootstrap: Annotated[str, typer.Option(envvar="KAFKA_BOOTSTRAP_SERVERS", help="Kafka bootstrap servers")
                              ] = "127.0.0.1:9092",
         topic_prefix: Annotated[str, typer.Option(envvar="SAMENVEILIG_TOPIC_PREFIX")] = "",
         as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout instead of tables")] = False,
         signing_public_dir: Annotated[Path | None, typer.Option(
             envvar=["SAMENVEILIG_SIGNING_PUBLIC_DIR", "SAMENVEILIG_SIGNING_DIR"],
             help="the services' public signing keys (default: signing/ in SAMENVEILIG_DATA_DIR, or .data)")
         ] = None) -> None:
    # The run command's data directory holds its keys: an audit of that system finds them there.
    keys = signing_public_dir or Path(os.environ.get("SAMENVEILIG_DATA_DIR", ".data")) / "signing"
    ctx.obj = Options(bootstrap, topic_prefix, as_json, keys)


@dataclass
class Log:
    records: dict[str, list[LogRecord]]
    entries: list[Entry]
    undecodable: list[tuple[LogRecord, str]]
    seconds: float


def load_log(options: Options, extra: list[str] | None = None,
             start: dict[tuple[str, int], int] | None = None) -> Log:
    started = time.monotonic()
    names = [str(t) for t in EVENT_TOPICS] + (extra or [])
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console, transient=True,
                  disable=options.as_json) as progress:
        task = progress.add_task("reading the log", total=None)
        records = read_topics(options.bootstrap, TopicNames(options.prefix), names,
                              progress=lambda n: progress.update(task, description=f"reading the log: {n:,} events"),
                              start=start)
        progress.update(task, description="folding")
        # Verifying: a record its topic's owner did not sign is left out (with its reason), never folded.
        codec = EventCodec(InMemoryKeyStore(), source="/samenveilig/audit", topics=TopicNames(options.prefix),
                           trust=TrustedSigners.load(options.signing_public_dir))
        entries: list[Entry] = []
        undecodable: list[tuple[LogRecord, str]] = []
        for name in map(str, EVENT_TOPICS):
            decoded, bad = decode_all(codec, in_stream_order(records.get(name, [])))
            entries += decoded
            undecodable += bad
    # A million long-lived objects: freezing them keeps the garbage collector from rescanning
    # them on every later allocation (seconds per replay and per query, bench/README.md).
    gc.collect()
    gc.freeze()
    return Log(records, entries, undecodable, time.monotonic() - started)


REF_HELP_DOSSIER = "the school's own reference instead of the id: VESTIGINGSCODE/DOSSIER_REF"
REF_HELP_STAFF = "the school's own reference instead of the id: VESTIGINGSCODE/STAFF_REF"


def _entity(log: Log, given: UUID | None, reference: str | None, kind: refs.Kind) -> UUID:
    """The id given, or the one the school's reference names in the log (exactly one of them)."""
    if (given is None) == (reference is None):
        raise typer.BadParameter(f"give the {kind}'s id or --ref VESTIGINGSCODE/REF (one of them)")
    if given is not None:
        return given
    assert reference is not None
    try:
        return refs.resolve(log.entries, kind, reference)
    except refs.UnknownReference as unknown:
        raise typer.BadParameter(str(unknown)) from None


def _at(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise typer.BadParameter("give a time zone, e.g. 2026-03-01T12:00+01:00")
    return moment.astimezone(UTC)


def _emit(options: Options, payload: Any, table: Table | None = None) -> None:
    if options.as_json:
        sys.stdout.write(json.dumps(payload, default=str, indent=2) + "\n")
    elif table is not None:
        Console().print(table)


ACTION_HELP = "view: who could see; change: who could change its contact, text or status"


def _change_row(rights: ChangeRights) -> dict[str, Any]:
    first = next(iter(rights.decisions.values()))
    return {"staff_id": str(rights.staff_id), "dossier_id": str(rights.dossier_id),
            "may_change": [what.value for what in rights.what], "rule": first.rule, "role": first.role,
            "since": _utc(first.since) if first.since else None, "reason": first.reason}


@app.command("who-could-see")
def who_could_see_cmd(ctx: typer.Context, dossier: Annotated[UUID | None, typer.Argument()] = None,
                      at: Annotated[str | None, typer.Option(help="ISO time with zone; default now")] = None,
                      axis: Annotated[str, typer.Option(help="valid: as we now know it; record: as known then")
                                      ] = "valid",
                      action: Annotated[str, typer.Option(help=ACTION_HELP)] = "view",
                      ref: Annotated[str | None, typer.Option(help=REF_HELP_DOSSIER)] = None) -> None:
    """Who could see (or change) DOSSIER at a moment, and by which rule (times in UTC)."""
    options = _options(ctx)
    moment = _at(at)
    chosen_axis, chosen_action = _axis(axis), _action(action)
    log = load_log(options)
    dossier = _entity(log, dossier, ref, "dossier")
    state = state_at(log.entries, moment, chosen_axis)
    if chosen_action == "change":
        changers = [_change_row(rights) for rights in who_could_change(state, dossier, moment)]
        table = Table("staff", "mag wijzigen", "rule", "role", "since (UTC)",
                      title=f"Wie kon dossier {dossier} wijzigen op {moment:%Y-%m-%d %H:%M} UTC ({axis} time)")
        for row in changers:
            table.add_row(row["staff_id"], ", ".join(row["may_change"]), str(row["rule"]), str(row["role"]),
                          _minute(row["since"]))
        _emit(options, {"dossier_id": str(dossier), "at": moment, "axis": axis, "action": "change",
                        "could_change": changers}, table)
        return
    allowed = who_could_see(state, dossier, moment)
    rows: list[dict[str, Any]] = [{"staff_id": str(a.staff_id), "rule": a.decision.rule, "role": a.decision.role,
                                   "since": _utc(a.decision.since) if a.decision.since else None,
                                   "reason": a.decision.reason} for a in allowed]
    table = Table("staff", "rule", "role", "since (UTC)",
                  title=f"Wie kon dossier {dossier} inzien op {moment:%Y-%m-%d %H:%M} UTC ({axis} time)")
    for row in rows:
        table.add_row(str(row["staff_id"]), str(row["rule"]), str(row["role"]), _minute(row["since"]))
    _emit(options, {"dossier_id": str(dossier), "at": moment, "axis": axis, "action": "view", "could_see": rows},
          table)


@app.command("what-could-see")
def what_could_see_cmd(ctx: typer.Context, staff: Annotated[UUID | None, typer.Argument()] = None,
                       at: Annotated[str | None, typer.Option()] = None,
                       axis: Annotated[str, typer.Option()] = "valid",
                       action: Annotated[str, typer.Option(help=ACTION_HELP)] = "view",
                       ref: Annotated[str | None, typer.Option(help=REF_HELP_STAFF)] = None) -> None:
    """Which dossiers STAFF could see (or change) at a moment, and by which rule (times in UTC)."""
    options = _options(ctx)
    moment = _at(at)
    chosen_axis, chosen_action = _axis(axis), _action(action)
    log = load_log(options)
    staff = _entity(log, staff, ref, "staff")
    state = state_at(log.entries, moment, chosen_axis)
    if chosen_action == "change":
        changes = [_change_row(rights) for rights in what_could_change(state, staff, moment)]
        table = Table("dossier", "mag wijzigen", "rule", "since (UTC)",
                      title=f"Wat kon {staff} wijzigen op {moment:%Y-%m-%d %H:%M} UTC")
        for row in changes:
            table.add_row(row["dossier_id"], ", ".join(row["may_change"]), str(row["rule"]), _minute(row["since"]))
        _emit(options, {"staff_id": str(staff), "at": moment, "axis": axis, "action": "change",
                        "could_change": changes}, table)
        return
    allowed = what_could_see(state, staff, moment)
    rows: list[dict[str, Any]] = [{"dossier_id": str(a.dossier_id), "rule": a.decision.rule,
                                   "since": _utc(a.decision.since) if a.decision.since else None} for a in allowed]
    table = Table("dossier", "rule", "since (UTC)", title=f"Wat kon {staff} inzien op {moment:%Y-%m-%d %H:%M} UTC")
    for row in rows:
        table.add_row(str(row["dossier_id"]), str(row["rule"]), _minute(row["since"]))
    _emit(options, {"staff_id": str(staff), "at": moment, "axis": axis, "action": "view", "could_see": rows},
          table)


def _axis(value: str) -> Axis:
    if value not in ("valid", "record"):
        raise typer.BadParameter("axis is 'valid' or 'record'")
    return value  # type: ignore[return-value]


def _action(value: str) -> str:
    if value not in ("view", "change"):
        raise typer.BadParameter("action is 'view' or 'change'")
    return value


def _utc(moment: datetime) -> datetime:
    """Every time the audit prints is UTC (the headers say so): the log keeps each event's own
    offset, and a table mixing +01:00, +02:00 and UTC misleads whoever compares its rows."""
    return moment.astimezone(UTC)


def _minute(moment: datetime | None) -> str:
    return "" if moment is None else f"{_utc(moment):%Y-%m-%d %H:%M}"


def _timeline_rows(entries: list[Entry]) -> list[dict[str, Any]]:
    rows = []
    for entry in entries:
        event = entry.event.event
        rows.append({"recorded_at": _utc(entry.event.recorded_at), "effective_at": _utc(entry.event.effective_at),
                     "type": entry.event.type, "staff_id": str(_staff_of(event) or ""),
                     "detail": _detail(event), "event_id": entry.event.id})
    return rows


def _staff_of(event: Any) -> Any:
    """The staff member a row is about: a contact assignment names the new contact, a missing
    contact the one who left."""
    for name in ("staff_id", "contact_staff_id", "previous_contact_staff_id"):
        if getattr(event, name, None) is not None:
            return getattr(event, name)
    return None


def _detail(event: Any) -> str:
    if isinstance(event, ConfidentialityAgreementRecorded):
        return f"version={event.version} valid_until={event.valid_until}"
    if isinstance(event, DossierViewed) and event.action != "view":
        return f"{event.action} {event.what}: allowed={event.allowed} rule={event.rule}"
    if isinstance(event, DossierContactAssigned):
        return f"nieuwe contactpersoon={event.contact_staff_id} reason={event.reason}"
    if isinstance(event, ContactPersonMissing):
        return f"geen contactpersoon meer (vertrokken: {event.previous_contact_staff_id})"
    if isinstance(event, BranchBrinChanged):
        return f"vestigingscode {event.previous_vestigingscode} -> {event.vestigingscode}"
    if isinstance(event, PupilDataPurged):
        return f"gegevens van leerling {event.pupil_id} verwijderd"
    for name in ("rule", "reason", "allowed"):
        if hasattr(event, name):
            return f"{name}={getattr(event, name)}"
    return ""


@app.command("timeline")
def timeline_cmd(ctx: typer.Context, dossier: Annotated[UUID | None, typer.Argument()] = None,
                 ref: Annotated[str | None, typer.Option(help=REF_HELP_DOSSIER)] = None) -> None:
    """Every grant, revocation, view and change of DOSSIER, in order (times in UTC)."""
    options = _options(ctx)
    log = load_log(options)
    dossier = _entity(log, dossier, ref, "dossier")
    rows = _timeline_rows(timeline(log.entries, dossier))
    table = Table("vastgelegd (UTC)", "van kracht (UTC)", "gebeurtenis", "medewerker", "detail",
                  title=f"Tijdlijn {dossier}")
    for row in rows:
        table.add_row(_minute(row["recorded_at"]), _minute(row["effective_at"]), row["type"],
                      row["staff_id"], row["detail"])
    _emit(options, {"dossier_id": str(dossier), "timeline": rows}, table)


@app.command("actions")
def actions_cmd(ctx: typer.Context,
                actor: Annotated[str | None, typer.Option(help="a staff id, or client:<id> for a service")] = None,
                pupil: Annotated[UUID | None, typer.Option(help="only actions concerning this pupil")] = None,
                actor_ref: Annotated[str | None, typer.Option(help=REF_HELP_STAFF + " (the actor)")] = None,
                pupil_ref: Annotated[str | None, typer.Option(
                    help="the school's own reference instead of --pupil: VESTIGINGSCODE/PUPIL_REF")] = None) -> None:
    """Who did what, with which client, on whose behalf (NEN 7513): grants, revocations, consent,
    holds, requests, leaks and admin actions, per actor and/or per pupil."""
    options = _options(ctx)
    log = load_log(options)
    if actor_ref is not None:
        if actor is not None:
            raise typer.BadParameter("give --actor or --actor-ref, not both")
        actor = str(_entity(log, None, actor_ref, "staff"))
    if pupil_ref is not None:
        pupil = _entity(log, pupil, pupil_ref, "pupil")
    rows = actions(log.entries, actor=actor, pupil=pupil)
    table = Table("vastgelegd (UTC)", "handeling", "door", "via", "namens", "betreft", title="Handelingen"
                  + (f" van {actor}" if actor else "") + (f" over leerling {pupil}" if pupil else ""))
    for row in rows:
        table.add_row(f"{row.recorded_at.astimezone(UTC):%Y-%m-%d %H:%M}", row.type, row.actor, row.client,
                      row.on_behalf_of or "", row.about)
    _emit(options, {"actions": [{"recorded_at": row.recorded_at, "type": row.type, "actor": row.actor,
                                 "client": row.client, "on_behalf_of": row.on_behalf_of,
                                 "pupil_ids": [str(p) for p in row.pupil_ids], "about": row.about,
                                 "event_id": row.event_id} for row in rows]}, table)


def differences(live: Mapping[str, Any], replay: Mapping[str, Any]) -> list[str]:
    """Every fact where the live tables and the fold of the log disagree."""
    return [f"{key}: live {live.get(key)} != replay {replay.get(key)}"
            for key in sorted(set(live) | set(replay)) if live.get(key) != replay.get(key)]


@app.command("replay")
def replay_cmd(ctx: typer.Context, access_db: Annotated[str | None, typer.Option(help="compare with this")] = None,
               registry_db: Annotated[str | None, typer.Option(help="compare with this")] = None,
               auth_db: Annotated[str | None, typer.Option(help="compare with this")] = None,
               snapshot_dir: Annotated[Path | None, typer.Option(help="resume from, and save, a snapshot")] = None
               ) -> None:
    """Fold the whole log with the services' own evolve functions; compare with their live state."""
    options = _options(ctx)
    if snapshot_dir is not None and registry_db is not None:
        raise typer.BadParameter("snapshots hold the access state only; compare the registry without --snapshot-dir")
    resumed = snapshot.load(snapshot_dir, options.prefix) if snapshot_dir else None
    base_state, start = resumed if resumed else (ACCESS_INITIAL, None)
    log = load_log(options, start=start)
    started = time.monotonic()
    access_state = reduce(access_evolve, (e.event for e in log.entries), base_state)
    if snapshot_dir is not None:
        positions = dict(start or {})
        for records in log.records.values():
            for record in records:
                positions[(record.topic, record.partition)] = record.offset + 1
        snapshot.save(snapshot_dir, options.prefix, access_state, positions)
    # The registry's own events and what it folds from elsewhere (a purge, from retention).
    registry_state = reduce(registry_evolve, (e.event.event for e in log.entries
                                              if e.record.topic == Topic.REGISTRY_EVENTS.value
                                              or e.event.type in REGISTRY_FOLDED), REGISTRY_INITIAL)
    auth_state = reduce(auth_domain.evolve, (e.event for e in log.entries
                                             if e.record.topic == Topic.AUTH_EVENTS.value), auth_domain.INITIAL_STATE)
    fold_seconds = time.monotonic() - started
    found_differences = {
        "access": differences(access_projection.of_tables(access_db), access_projection.of_state(access_state))
        if access_db else None,
        "registry": differences(registry_projection.of_tables(registry_db),
                                registry_projection.of_state(registry_state)) if registry_db else None,
        "auth": differences(auth_projection.of_tables(auth_db), auth_projection.of_state(auth_state))
        if auth_db else None}
    counts = Counter(e.event.type for e in log.entries)
    payload = {"events": len(log.entries), "by_type": dict(sorted(counts.items())), "undecodable": len(log.undecodable),
               "read_seconds": round(log.seconds, 3), "fold_seconds": round(fold_seconds, 3),
               "events_per_second": round(len(log.entries) / max(log.seconds + fold_seconds, 1e-9)),
               "differences": found_differences, "resumed_from_snapshot": resumed is not None,
               "replay_equals_live": all(not d for d in found_differences.values() if d is not None)}
    table = Table("gebeurtenis", "aantal", title=f"Replay: {len(log.entries):,} events in "
                  f"{log.seconds + fold_seconds:.2f} s")
    for name, count in sorted(counts.items()):
        table.add_row(name, f"{count:,}")
    _emit(options, payload, table)
    if not options.as_json:
        for service, found in found_differences.items():
            if found is not None:
                console.print(f"{service}: " + ("replay equals live" if not found else f"{len(found)} differences"))
                for line in found[:20]:
                    console.print(f"  {line}")
    if not payload["replay_equals_live"]:
        raise typer.Exit(1)


@app.command("verify")
def verify_cmd(ctx: typer.Context, access_db: Annotated[str | None, typer.Option()] = None,
               registry_db: Annotated[str | None, typer.Option()] = None) -> None:
    """Prove nothing was lost or altered; exits 1 when a check fails."""
    options = _options(ctx)
    intake = Topic.REGISTRY_MUTATIONS.value
    log = load_log(options, extra=[intake, dead_letter_topic(intake)])
    heads = access_projection.view_chain_heads(access_db) if access_db else None
    accepted = registry_projection.accepted_mutations(registry_db, datetime.now(UTC)) if registry_db else None
    canonical = [e for e in log.entries if e.record.topic == Topic.REGISTRY_EVENTS.value]
    auth_deployed = bool(log.records.get(Topic.AUTH_EVENTS.value))
    findings = [
        checks.unique_event_ids([r for name in map(str, EVENT_TOPICS) for r in log.records.get(name, [])]),
        checks.continuous_offsets({k: v for k, v in log.records.items()}),
        checks.continuous_streams({name: log.records.get(name, []) for name in map(str, EVENT_TOPICS)}),
        checks.departures_followed(log.entries, auth_deployed),
        checks.access_log_chain(log.entries, heads),
        checks.mutations_accounted(log.records.get(intake, []), log.records.get(dead_letter_topic(intake), []),
                                   canonical, accepted),
    ]
    findings.append(checks.signed_by_owners(log.entries, log.undecodable))
    undecodable = [(record, reason) for record, reason in log.undecodable if reason not in checks.SIGNATURE_REASONS]
    if undecodable:
        bad = checks.Finding("every canonical event decodes", False, len(log.entries) + len(undecodable))
        for record, reason in undecodable[:50]:
            bad.problems.append(f"{record.topic}[{record.partition}]@{record.offset}: {reason}")
        findings.append(bad)
    table = Table("controle", "resultaat", "aantal", title="Verificatie van het eventlog")
    for finding in findings:
        copies = f" ({finding.copies:,} opnieuw gepubliceerd)" if finding.copies else ""
        copies += f" ({finding.holes:,} lege offsets)" if finding.holes else ""
        table.add_row(finding.check, "[green]in orde[/]" if finding.ok else "[red]FOUT[/]",
                      f"{finding.checked:,}{copies}")
    _emit(options, {"ok": all(f.ok for f in findings),
                    "findings": [vars(f) for f in findings]}, table)
    if not options.as_json:
        for finding in findings:
            for problem in finding.problems[:10]:
                console.print(f"[red]{finding.check}[/]: {problem}")
            for note in finding.notes[:10]:
                console.print(f"[yellow]{finding.check}[/]: {note}")
    if not all(f.ok for f in findings):
        raise typer.Exit(1)


REPORT = """<!doctype html><html lang="nl"><head><meta charset="utf-8"><title>Auditrapport {dossier}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto}}
table{{border-collapse:collapse;width:100%}}
td,th{{border:1px solid #ccc;padding:.3rem .5rem;text-align:left}} th{{background:#eef}}</style></head><body>
<h1>Auditrapport hulpvraag {dossier}</h1>
<p>Periode: {start} tot {end} (alle tijden in UTC). Gemaakt op {made} uit het eventlog ({events} gebeurtenissen).</p>
<h2>Wie kon de hulpvraag inzien aan het begin van de periode</h2>{at_start}
<h2>Wie kon de hulpvraag inzien aan het eind van de periode</h2>{at_end}
<h2>Tijdlijn: toegang, intrekkingen, inzage en wijzigingen</h2>{timeline}
<p>Namen van medewerkers en leerlingen staan niet in dit rapport: alleen kenmerken (dataminimalisatie).</p>
</body></html>"""


def _html_table(headers: list[str], rows: list[list[Any]]) -> str:
    from html import escape

    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>" if rows else "<p>Niemand.</p>"


@app.command("report")
def report_cmd(ctx: typer.Context, start: Annotated[str, typer.Option("--from")],
               end: Annotated[str, typer.Option("--to")], out: Annotated[Path, typer.Option()],
               dossier: Annotated[UUID | None, typer.Argument()] = None,
               ref: Annotated[str | None, typer.Option(help=REF_HELP_DOSSIER)] = None) -> None:
    """An HTML report for a privacy officer (Dutch): who could see the dossier, and what happened
    (times in UTC)."""
    options = _options(ctx)
    begin, finish = _at(start), _at(end)
    log = load_log(options)
    dossier = _entity(log, dossier, ref, "dossier")

    def could_see(at: datetime) -> str:
        rows = [[str(a.staff_id), a.decision.rule, a.decision.role, _minute(a.decision.since)]
                for a in who_could_see(state_at(log.entries, at), dossier, at)]
        return _html_table(["medewerker", "regel", "rol", "sinds (UTC)"], rows)

    events = [e for e in timeline(log.entries, dossier) if begin <= e.event.recorded_at <= finish
              or begin <= e.event.effective_at <= finish]
    rows = [[_minute(r["recorded_at"]), _minute(r["effective_at"]), r["type"], r["staff_id"], r["detail"]]
            for r in _timeline_rows(events)]
    out.write_text(REPORT.format(dossier=dossier, start=f"{begin:%Y-%m-%d %H:%M}", end=f"{finish:%Y-%m-%d %H:%M}",
                                 made=f"{datetime.now(UTC):%Y-%m-%d %H:%M}", events=len(log.entries),
                                 at_start=could_see(begin), at_end=could_see(finish),
                                 timeline=_html_table(["vastgelegd (UTC)", "van kracht (UTC)", "gebeurtenis",
                                                       "medewerker", "detail"], rows)), encoding="utf-8")
    _emit(options, {"report": str(out), "events": len(events)})
    if not options.as_json:
        console.print(f"rapport geschreven: {out}")


if __name__ == "__main__":
    os.environ.setdefault("COLUMNS", "160")
    app()
