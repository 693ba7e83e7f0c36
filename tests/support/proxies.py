"""Settings for an app behind trusted proxies (TRUSTED_PROXIES)."""

from __future__ import annotations

from tests.support.app import make_settings

PROXIES = "10.0.0.0/8,2001:db8:ffff::/48"


def settings_with(tmp_path, proxies: str = PROXIES, **overrides):
    networks = tuple(p for p in proxies.split(",") if p)
    return make_settings(tmp_path, trusted_proxies=networks, **overrides)
