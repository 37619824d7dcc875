"""Settings of the registry service."""

from pydantic import EmailStr

from shared.settings import MailSettings

# The CloudEvents `source` of the registry's events (the service and its operator's command).
EVENT_SOURCE = "/samenveilig/registry"


class RegistrySettings(MailSettings):
    service_name: str = "registry"
    consumer_group: str = "registry-intake"
    api_port: int = 8001
    # PPO asks branch changes to be mailed to its office (the seed's info@ address).
    office_email: EmailStr = "info@pporotterdam.nl"
    mail_from: EmailStr = "samenveilig@pporotterdam.nl"
