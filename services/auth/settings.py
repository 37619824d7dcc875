"""Settings of the auth service."""

from pydantic import Field

from shared.settings import MailSettings


class AuthSettings(MailSettings):
    service_name: str = "auth"
    consumer_group: str = "auth-processor"
    api_port: int = 8002
    # Where invitation links point: this service's own pages.
    auth_url: str = "http://127.0.0.1:8002"
    # Responsible disclosure (RFC 9116 /.well-known/security.txt and the Dutch page /beveiliging):
    # who takes a report, the privacy officer (FG) for anything about personal data, and how long
    # a served security.txt stays valid (its Expires field, counted from the request).
    security_contact: str = "mailto:security@pporotterdam.nl"
    privacy_officer_contact: str = "mailto:fg@pporotterdam.nl"
    security_txt_valid_days: int = Field(default=180, ge=1, le=364)
    # Session cookies only over HTTPS; off only for local http://127.0.0.1 runs and tests.
    cookie_secure: bool = True
    # argon2id cost; the defaults of argon2-cffi (RFC 9106 low-memory profile).
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    # Attempts per real peer address (a moving window; 429 with Retry-After beyond it). A
    # school's staff may share one address: generous, it stops scripts, not colleagues. Per
    # account there is no rate a stranger could use up, but the blind lock (domain.py).
    login_rate_per_address: str = "60/minute"
    # The token, introspection and revocation endpoints, per address (services call them often).
    token_rate_per_address: str = "1200/minute"  # noqa: S105 (a rate, not a secret)
    # Resource servers introspect on every request they serve: a limit of its own.
    introspect_rate_per_address: str = "12000/minute"
