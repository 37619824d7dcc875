"""Settings of the registry service."""

from pydantic import EmailStr

from shared.settings import CommonSettings


class RegistrySettings(CommonSettings):
    service_name: str = "registry"
    consumer_group: str = "registry-intake"
    api_port: int = 8001
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    # PPO asks branch changes to be mailed to its office (the seed's info@ address).
    office_email: EmailStr = "info@pporotterdam.nl"
    mail_from: EmailStr = "samenveilig@pporotterdam.nl"
    # How often the relay looks for due events and unsent mail.
    relay_interval_s: float = 0.05
