"""Settings of the access service."""

from shared.settings import MailSettings


class AccessSettings(MailSettings):
    service_name: str = "access"
    consumer_group: str = "access-processor"
    api_port: int = 8003
    # Where the links in notifications point.
    kindkans_url: str = "https://kindkans.pporotterdam.nl"
    # Fail closed: checks answer 503 when the processor is further behind than this many events,
    # or has not reported for this many seconds (it reports every second, also when idle).
    max_lag_events: int = 100
    stale_after_s: float = 10.0
    # How long a read-your-writes request may wait for its event.
    max_wait_ms: int = 5000
    # At most this many requests wait at once (each holds a worker thread); more get a 503 with
    # Retry-After at once instead of queueing behind them.
    max_waiting_requests: int = 8
    # Fail closed, too, while a change accepted upstream has not reached the broker: the
    # registry's and retention's APIs (comma-separated base URLs; their /v1/outbox is asked) and
    # this service's own outbox, each allowed to hold a due event this long.
    upstream_outbox_urls: str = ""
    outbox_max_age_s: float = 5.0
