"""The files of app/static (the console's stylesheet and script, the favicon, the script that
starts the API docs), each under a name carrying its content hash, so that they can be
cached for a year: a new release changes the name. Served under /app/static by the
console; the public card page links the favicon from there too, and /schema its script.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

STATIC = Path(__file__).parent / "static"


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str


def _load_assets() -> tuple[dict[str, Asset], dict[str, str]]:
    """Every file of app/static under a name carrying its content hash (console.3f2a1b9c.css)."""
    assets, urls = {}, {}
    for file in sorted(STATIC.iterdir()):
        if not file.is_file():
            continue
        body = file.read_bytes()
        hashed = f"{file.stem}.{hashlib.sha256(body).hexdigest()[:10]}{file.suffix}"
        media_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        if media_type.startswith("text/") or media_type in ("application/javascript", "image/svg+xml"):
            media_type += "; charset=utf-8"
        assets[hashed] = Asset(body, media_type)
        urls[file.name] = f"/app/static/{hashed}"
    return assets, urls


ASSETS, ASSET_URLS = _load_assets()


def static_url(name: str) -> str:
    """The hashed URL of a file in app/static (KeyError for a file that is not there)."""
    return ASSET_URLS[name]
