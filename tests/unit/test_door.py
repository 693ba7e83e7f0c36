"""The /i/ pages' share of the scanner rate limit, in process (the door itself, over real
sockets, is tests/live/test_door.py).
"""

from __future__ import annotations

from tests.support.app import PHONE_UA
from tests.support.scanner import limited_client


def test_invitation_pages_share_the_scanner_limit(tmp_path):
    with limited_client(tmp_path) as client:
        for _ in range(3):
            assert client.get("/i/nothing/open.gif", headers={"User-Agent": PHONE_UA}).status_code == 200
        opened = client.get("/i/nothing/open.gif", headers={"User-Agent": PHONE_UA})
        followed = client.get("/i/nothing", headers={"User-Agent": PHONE_UA}, follow_redirects=False)
        page = client.get("/p/nothing")
        for response in (opened, followed, page):
            assert response.status_code == 429
            assert 1 <= int(response.headers["retry-after"]) <= 60
