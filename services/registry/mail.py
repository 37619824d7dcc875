"""The Dutch e-mail that tells PPO's office about a branch change (actie 2 of the seed)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared import dutch
from shared.contracts.mutations import BranchChange, BranchReport

CHANGE_NAMES = {
    BranchChange.FOUNDED: "oprichting",
    BranchChange.MOVED: "verhuizing",
    BranchChange.RENAMED: "naamswijziging",
    BranchChange.BRIN_CHANGED: "wijziging BRIN",
    BranchChange.CLOSED: "sluiting",
    BranchChange.WIJKNETWERK_CHANGED: "wijziging wijknetwerk",
}


@dataclass(frozen=True)
class OfficeMail:
    message_id: str
    subject: str
    body: str


def branch_change_mail(report: BranchReport, *, reported_by: str, effective_at: datetime, reference: str,
                       domain: str) -> OfficeMail:
    """Every field PPO's form asks for: naam vestiging, aard van de wijziging, BRIN, adres,
    telefoonnummer, wijknetwerk en de datum per wanneer de wijziging ingaat."""
    change = CHANGE_NAMES[report.change]
    code = report.vestigingscode
    if report.new_vestigingscode:
        code = f"{report.vestigingscode} (nieuw: {report.new_vestigingscode})"
    address = report.address
    body = "\n".join([
        "Beste medewerker van het bestuurskantoor,",
        "",
        "Via samenveilig is een wijziging van een schoolvestiging gemeld.",
        "",
        f"Naam vestiging:        {report.name}",
        f"Aard van de wijziging: {change}",
        f"BRIN/vestigingscode:   {code}",
        f"Adres:                 {address.street} {address.house_number}, {address.postcode} {address.city}",
        f"Telefoonnummer:        {report.phone}",
        f"Wijknetwerk:           {report.wijknetwerk}",
        f"Ingangsdatum:          {dutch.day(effective_at)}",
        "",
        f"Gemeld door:           {reported_by}",
        f"Kenmerk:               {reference}",
        "",
        "Dit bericht is automatisch verstuurd; de wijziging is al in samenveilig verwerkt.",
    ]) + "\n"
    return OfficeMail(message_id=f"<{reference}@{domain}>",
                      subject=f"Wijziging schoolvestiging: {report.name} ({report.vestigingscode}), {change}",
                      body=body)
