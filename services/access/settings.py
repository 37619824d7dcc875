"""Settings of the access service."""

from shared.settings import CommonSettings


class AccessSettings(CommonSettings):
    service_name: str = "access"
    consumer_group: str = "access-processor"
    api_port: int = 8003
