"""What parents and schools read from the retention service, in Dutch: the mail to parents about
a data leak (AVG art. 34), the answer letters to data-subject requests, and the readable page of
an inspection export. Rendering only; the decisions are made elsewhere."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.access.domain import RULE_CONTACT, RULE_DIRECTEUR, RULE_EXPLICIT, RULE_IB_ER, RULE_SWV
from shared import dutch

_templates = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                         autoescape=select_autoescape(["html"]), undefined=StrictUndefined,
                         trim_blocks=True, lstrip_blocks=True)


def dutch_date(value: date | datetime | str | None) -> str:
    if value is None:
        return "onbekend"
    if isinstance(value, str):
        text = value
        try:
            value = datetime.fromisoformat(text) if "T" in text else date.fromisoformat(text)
        except ValueError:
            return text  # "verwijderd"
    return dutch.moment(value) if isinstance(value, datetime) else dutch.day(value)


_templates.filters["datum"] = dutch_date


def reference(prefix: str, some_id: UUID | str) -> str:
    """A short, non-identifying reference to quote in letters and on the phone."""
    return f"{prefix}-{str(some_id)[:8].upper()}"


@dataclass(frozen=True)
class Mail:
    subject: str
    body: str


@dataclass(frozen=True)
class LeakNotice:
    """One of the fixed texts a leak mail is built from: what happened, what it can mean, what
    we do. The FG chooses one; her own words go to the breach register, never into the mail (a
    free text mailed to every parent of a wijknetwerk would be anyone's megaphone, and could name
    a child)."""

    happened: str
    consequences: str
    measures: str


LEAK_NOTICES: dict[str, LeakNotice] = {
    "verkeerde-ontvanger": LeakNotice(
        "Een bericht of bestand met gegevens van uw kind is bij een verkeerde ontvanger terechtgekomen.",
        "Iemand die daar geen recht op had, kan gegevens van uw kind hebben gezien.",
        "Wij hebben de ontvanger gevraagd de gegevens te verwijderen en dat te bevestigen."),
    "account-misbruikt": LeakNotice(
        "Iemand heeft zonder toestemming het account gebruikt van een medewerker die gegevens van uw kind "
        "kon inzien.",
        "Die persoon kan gegevens van uw kind hebben ingezien.",
        "Wij hebben het account geblokkeerd en het wachtwoord en de tweestapsverificatie opnieuw laten instellen."),
    "apparaat-kwijt": LeakNotice(
        "Een laptop, telefoon of gegevensdrager met gegevens van uw kind is verloren of gestolen.",
        "Wie het apparaat heeft, kan mogelijk gegevens van uw kind inzien.",
        "Wij hebben de toegang vanaf het apparaat geblokkeerd en doen aangifte waar dat nodig is."),
    "systeem-inbraak": LeakNotice(
        "Iemand is zonder toestemming binnengedrongen in een systeem waarin gegevens van uw kind staan.",
        "Gegevens van uw kind kunnen zijn ingezien of gekopieerd.",
        "Wij hebben het lek gedicht en laten onderzoeken wat er precies is gebeurd."),
    "anders": LeakNotice(
        "Gegevens van uw kind zijn in handen gekomen van iemand die daar geen recht op had, of konden dat.",
        "Wij onderzoeken nog wat de gevolgen kunnen zijn. Wij informeren u als wij meer weten.",
        "Wij onderzoeken hoe dit kon gebeuren en welke maatregelen nodig zijn. Wij informeren u daarover."),
}


def leak_notice(leak_id: UUID, discovered_at: datetime, notice: str, privacy_contact: str) -> Mail:
    """To each parent of an affected pupil, from a fixed text only (LEAK_NOTICES). No child's
    name and nothing about the child: the mail must not become a leak of its own (a wrong
    address on file happens)."""
    ref = reference("DL", leak_id)
    text = LEAK_NOTICES.get(notice, LEAK_NOTICES["anders"])
    lines = [
        "Beste ouder/verzorger,",
        "",
        f"Op {dutch_date(discovered_at)} hebben wij ontdekt dat er een datalek is geweest waarbij",
        "gegevens van uw kind betrokken zijn. Wij vinden het belangrijk u hierover te informeren.",
        "",
        "Wat is er gebeurd?",
        text.happened,
        "",
        "Wat kunnen de gevolgen zijn?",
        text.consequences,
        "",
        "Wat doen wij?",
        text.measures,
        "Wij melden het datalek, waar de wet dat vraagt, bij de Autoriteit Persoonsgegevens.",
        "",
        "Heeft u vragen, of wilt u weten welke gegevens van uw kind wij bewaren? Neem dan contact op",
        f"met onze functionaris gegevensbescherming: {privacy_contact}. Noem daarbij het kenmerk {ref}.",
        "",
        "Met vriendelijke groet,",
        "PPO Rotterdam en de school van uw kind",
    ]
    return Mail(subject=f"Datalek: gegevens van uw kind zijn betrokken (kenmerk {ref})", body="\n".join(lines) + "\n")


def answer_letter(request: dict[str, Any], privacy_contact: str) -> str:
    """The school's answer to a data-subject request, as an HTML letter (one template per kind)."""
    own = request["requested_by"] == "pupil"  # a pupil from 16 asked: the answer goes to them, not the parents
    return _templates.get_template(f"brief_{request['kind']}.html").render(
        request=request, kenmerk=reference("AVG", request["request_id"]), contact=privacy_contact,
        aan="Aan de leerling" if own else "Aan de ouder(s)/verzorger(s)",
        over="u" if own else "uw kind", van="uw gegevens" if own else "de gegevens van uw kind")


def inspection_page(export: dict[str, Any], request_id: UUID | str) -> str:
    return _templates.get_template("inzage.html").render(
        export=export, kenmerk=reference("AVG", request_id), rule_names=RULE_NAMES, role_names=ROLE_NAMES)


RULE_NAMES = {
    RULE_IB_ER: "intern begeleider van de school",
    RULE_DIRECTEUR: "directeur van de school",
    RULE_CONTACT: "contactpersoon van de hulpvraag",
    RULE_EXPLICIT: "persoonlijk toegang gekregen",
    RULE_SWV: "consulent van het samenwerkingsverband",
}
ROLE_NAMES = {
    "ib_er": "intern begeleider", "directeur": "directeur", "leerkracht": "leerkracht", "extern": "externe",
    "stagiair": "stagiair", "swv_consultant": "consulent samenwerkingsverband", "administrator": "beheerder",
    "fg": "functionaris gegevensbescherming",
    None: "onbekend",
}
