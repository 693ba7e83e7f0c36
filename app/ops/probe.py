"""`qrcontact probe URL [--slug S]`: the smoke test of a deploy (SPEC §11).

It asks a running service what a scanner, a person and a program would: `/health`; with
a slug, the card's short link (a 302 to its page), the page and the vCard; and the API's
docs. Every card request is a HEAD, so a probe counts no scan, view or save. It prints
one line per check and exits 0 when all pass, 1 with the reason of each failure
otherwise: the deploy steps use it as the smoke test and the rollback trigger.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import httpx

TIMEOUT = 10.0
USER_AGENT = "qrcontact-probe"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    method: str
    path: str
    judge: Callable[[httpx.Response], str | None]  # the reason it fails, None when it passes


def _status(expected: int, content_type: str | None = None) -> Callable[[httpx.Response], str | None]:
    def judge(response: httpx.Response) -> str | None:
        if response.status_code != expected:
            return f"answered {response.status_code}, expected {expected}"
        got = response.headers.get("content-type", "")
        if content_type is not None and not got.startswith(content_type):
            return f"content-type {got or 'missing'}, expected {content_type}"
        return None

    return judge


def _healthy(response: httpx.Response) -> str | None:
    if response.status_code != 200:
        return f"answered {response.status_code}: {response.text[:200]}"
    try:
        body = response.json()
    except ValueError:
        return "not a JSON health document"
    return None if body.get("status") == "ok" else f"status {body.get('status')!r}: {body.get('checks')}"


def _redirects_to(slug: str) -> Callable[[httpx.Response], str | None]:
    def judge(response: httpx.Response) -> str | None:
        if response.status_code != 302:
            return f"answered {response.status_code}, expected a 302 to the card page"
        location = response.headers.get("location", "")
        return None if location.split("?")[0].endswith(f"/p/{slug}") else f"redirects to {location!r}, not to /p/{slug}"

    return judge


def checks(slug: str | None) -> list[Check]:
    found = [Check("health", "GET", "/health", _healthy)]
    if slug is not None:
        card = quote(slug, safe="")
        found += [
            Check("short link", "HEAD", f"/c/{card}", _redirects_to(slug)),
            Check("card page", "HEAD", f"/p/{card}", _status(200, "text/html")),
            Check("vCard", "HEAD", f"/p/{card}.vcf", _status(200, "text/vcard")),
        ]
    found += [
        Check("API docs", "GET", "/schema", _status(200, "text/html")),
        Check("OpenAPI document", "GET", "/schema/openapi.json", _status(200, "application/vnd.oai.openapi+json")),
    ]
    return found


def probe(base_url: str, slug: str | None = None, transport: httpx.BaseTransport | None = None) -> list[tuple[Check, str | None, float]]:
    """Run every check against `base_url`: (check, the reason it failed or None, seconds taken)."""
    results = []
    with httpx.Client(base_url=base_url.rstrip("/"), timeout=TIMEOUT, follow_redirects=False, transport=transport,
                      headers={"User-Agent": USER_AGENT}) as client:
        for check in checks(slug):
            started = time.perf_counter()
            try:
                failure = check.judge(client.request(check.method, check.path))
            except httpx.HTTPError as exc:
                failure = f"{type(exc).__name__}: {exc or 'no answer'}"
            results.append((check, failure, time.perf_counter() - started))
    return results


def run(base_url: str, slug: str | None) -> int:
    """The command: a line per check, exit status 0 when every check passed, else 1."""
    results = probe(base_url, slug)
    for check, failure, seconds in results:
        verdict = "ok  " if failure is None else "FAIL"
        print(f"{verdict} {check.name}: {check.method} {check.path} ({seconds * 1000:.0f} ms)" + (f": {failure}" if failure else ""))
    failed = [check.name for check, failure, _ in results if failure is not None]
    print("all checks passed" if not failed else f"failed: {', '.join(failed)}")
    return 0 if not failed else 1
