"""Dutch notification mail of the access service. Only a link and a dossier reference: never the
child's name or anything about the child (data minimisation)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID


@dataclass(frozen=True)
class Notification:
    subject: str
    body: str


def dossier_reference(dossier_id: UUID) -> str:
    """A short, non-identifying reference staff can quote to each other and to the helpdesk."""
    return f"HV-{str(dossier_id)[:8].upper()}"


CHANGES = {
    "DossierOpened": ("Nieuwe hulpvraag", "Er is een nieuwe hulpvraag aangemaakt"),
    "DossierContactAssigned": ("Contactpersoon gewijzigd", "De contactpersoon van een hulpvraag is gewijzigd"),
    "DossierClosed": ("Hulpvraag afgesloten", "Een hulpvraag is afgesloten"),
}


def dossier_changed(event_type: str, dossier_id: UUID, kindkans_url: str) -> Notification:
    title, sentence = CHANGES[event_type]
    reference = dossier_reference(dossier_id)
    return Notification(
        subject=f"Kindkans: {title} ({reference})",
        body="\n".join([
            "Beste collega,",
            "",
            f"{sentence} waar u bij betrokken bent.",
            "",
            f"Kenmerk: {reference}",
            f"Bekijk de hulpvraag in Kindkans: {kindkans_url.rstrip('/')}/hulpvragen/{dossier_id}",
            "",
            "Om de privacy van leerlingen te beschermen staat in deze e-mail geen informatie over de",
            "leerling. U ontvangt dit bericht omdat u toegang heeft tot deze hulpvraag.",
        ]) + "\n")


def contact_missing(dossier_id: UUID, kindkans_url: str) -> Notification:
    reference = dossier_reference(dossier_id)
    return Notification(
        subject=f"Kindkans: hulpvraag zonder contactpersoon ({reference})",
        body="\n".join([
            "Beste directeur,",
            "",
            "De contactpersoon van een open hulpvraag van uw vestiging is uit dienst gegaan, en er is",
            "geen intern begeleider (IB'er) die de hulpvraag kan overnemen.",
            "",
            f"Kenmerk: {reference}",
            f"Wijs in Kindkans een nieuwe contactpersoon toe: {kindkans_url.rstrip('/')}/hulpvragen/{dossier_id}",
            "",
            "Zolang er geen contactpersoon is, ziet het samenwerkingsverband deze hulpvraag in de lijst",
            "'hulpvragen zonder contactpersoon'.",
        ]) + "\n")
