"""Throttling at the edge: how many attempts a caller may make in a window (the `limits`
library's moving window, in this process's memory), and who the caller really is.

The caller is the TCP peer. A forwarded header (`X-Forwarded-For`) is believed only when the
peer is one of the configured proxies (`SAMENVEILIG_TRUSTED_PROXIES`), and then only up to the
first address that is not a proxy: anything further left was written by the client itself.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Mapping

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.requests import Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(setting: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in setting.split(",") if part.strip())


def _in(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in networks)


def client_address(request: Request, proxies: tuple[Network, ...]) -> str:
    """The real peer: the TCP peer, or, behind a configured proxy, the address the proxies saw."""
    peer = request.client.host if request.client else "unknown"
    if not _in(peer, proxies):
        return peer
    hops = [hop.strip() for header in request.headers.getlist("x-forwarded-for") for hop in header.split(",")]
    for hop in reversed(hops):
        if not _in(hop, proxies):
            return hop if _in(hop, (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))) else peer
    return peer


class Throttle:
    """Named limits ("login": "30/minute"), each counted per key (an address)."""

    def __init__(self, limits: Mapping[str, str]) -> None:
        self._limits = {name: parse(rule) for name, rule in limits.items()}
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def retry_after(self, name: str, key: str) -> int | None:
        """Counts one attempt; None when it is allowed, else the seconds until one would be."""
        limit = self._limits[name]
        if self._limiter.hit(limit, name, key):
            return None
        reset_at = self._limiter.get_window_stats(limit, name, key).reset_time
        return max(1, math.ceil(reset_at - time.time()))
