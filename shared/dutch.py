"""Dates as Dutch readers expect them, in Dutch time: "3 december 2026", "3 december 2026 om
14:05 uur". Shared by every text parents, schools and PPO's office read."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
MONTHS = ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september",
          "oktober", "november", "december")


def day(value: date | datetime) -> str:
    """The calendar day; a moment is first put in Dutch time (23:30 UTC is already tomorrow in summer)."""
    if isinstance(value, datetime):
        value = value.astimezone(AMSTERDAM)
    return f"{value.day} {MONTHS[value.month - 1]} {value.year}"


def moment(value: datetime) -> str:
    local = value.astimezone(AMSTERDAM)
    return f"{day(local)} om {local:%H:%M} uur"
