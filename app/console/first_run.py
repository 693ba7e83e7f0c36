"""What a first run leaves unset, said to the admins (SPEC §11 "First run says what is not
set"): a PUBLIC_BASE_URL on this machine (codes printed now point at localhost, which no
phone can open) and no SMTP_URL (email is written to a folder, not sent). Shown as a banner
on every console page an admin sees (base layout) and flagged on Team › System.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.config import Settings


@dataclass(frozen=True, slots=True)
class Gap:
    setting: str  # the environment variable to set
    now: str  # what it is now, as the admin would recognize it
    why: str  # what goes wrong meanwhile
    fix: str  # what to set it to


def on_this_machine(url: str) -> bool:
    """Whether a base URL names this machine only: localhost, a loopback or unspecified address."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def gaps(settings: Settings) -> list[Gap]:
    """The settings a service others use needs and this one lacks (none: all set)."""
    found = []
    if on_this_machine(settings.public_base_url):
        found.append(Gap(
            "PUBLIC_BASE_URL", settings.public_base_url,
            "QR codes and links made now point at this machine: a phone that scans them cannot open them.",
            "Set PUBLIC_BASE_URL to the address phones reach (https://cards.example.com; on this network "
            f"HOST=0.0.0.0 PUBLIC_BASE_URL=http://<this machine's address>:{settings.port}) and restart.",
        ))
    if not settings.smtp_url:
        found.append(Gap(
            "SMTP_URL", "not set",
            f"Email is not sent: invitations, verification and password-reset emails are written to {settings.outbox_dir}.",
            "Set SMTP_URL (smtp://user:password@smtp.example.com:587) and MAIL_FROM, and restart.",
        ))
    return found
