"""Settings of the retention service."""

from pydantic import Field

from services.retention.domain import DEFAULT_PERIODS
from shared.settings import MailSettings


class RetentionSettings(MailSettings):
    service_name: str = "retention"
    consumer_group: str = "retention-processor"
    api_port: int = 8004
    # Years kept after leaving, per data category (JSON in SAMENVEILIG_RETENTION_YEARS, e.g.
    # {"swv_dossier": 3}): the categories named replace their default of 2 years, the others keep
    # it. Above 2 breaks the SSOE statement's promise unless a law demands it: logged at start.
    retention_years: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_PERIODS))
    # Who parents and pupils contact about their data (the FG / privacy officer), named in the
    # leak mail and the answer letters.
    privacy_contact: str = "privacy@pporotterdam.nl"
    # A leak mail to more parents than this waits until a second FG of the board approves it:
    # one person's mistake (or stolen account) must not reach a whole wijknetwerk.
    leak_mail_second_approval_above: int = Field(default=50, ge=0)
