"""The contact exchange at an edge (SPEC §8) with real processes: a primary and an edge as
`qrcontact serve`, sharing a replica on moto_server as S3 and one JWT_SECRET. The form is
answered by the primary while it is up; with the primary stopped, the edge keeps the lead,
tells the visitor "Sent", and ships it once the primary is back: exactly one lead.
"""

from __future__ import annotations

import re
import secrets

import httpx

from app.sqlite import sqlite3
from tests.support.app import PASSWORD
from tests.support.edges import TOKEN, edge_env, replica_url, served_by_the_edge
from tests.support.leads import VISITOR
from tests.support.net import free_port
from tests.support.s3 import S3_ENV, make_bucket
from tests.support.service import Service, sign_up
from tests.support.waiting import wait_until


def leads_named(primary: Service, name: str) -> int:
    conn = sqlite3.connect(primary.data_dir / "qrcontact.db", timeout=10)
    try:
        return conn.execute("SELECT count(*) FROM leads WHERE name = ?", (name,)).fetchone()[0]
    finally:
        conn.close()


def test_a_lead_sent_at_an_edge_while_the_primary_is_down_arrives_exactly_once(s3_endpoint, tmp_path):
    make_bucket(s3_endpoint, "leads")
    replica = replica_url(s3_endpoint, "leads")
    secret = secrets.token_urlsafe(48)
    internal_port = free_port()
    primary = Service(tmp_path / "primary", EDGE_TOKEN=TOKEN, INTERNAL_PORT=str(internal_port), REPLICA_URL=replica,
                      JWT_SECRET=secret, **S3_ENV)
    edge = None
    try:
        primary.start()
        headers = sign_up(primary, "edge-leads@example.com")
        created = httpx.post(f"{primary.url}/v1/cards", json={"fullName": "Edge Owner", "email": "o@example.com",
                                                                "slug": "edge-lead"}, headers=headers)
        assert created.status_code == 201, created.text
        edge = Service(tmp_path / "edge", JWT_SECRET=secret, **edge_env(primary, f"http://127.0.0.1:{internal_port}", replica))
        edge.start()
        page = wait_until(
            lambda: served_by_the_edge(r := httpx.get(f"{edge.url}/p/edge-lead")) and r.status_code == 200 and r,
            timeout=60, what="the edge to serve the card from its copy",
        )
        token = re.search(r'name="token" value="([^"]+)"', page.text).group(1)
        form = f"{edge.url}/p/edge-lead/exchange"

        online = httpx.post(form, data={**VISITOR, "name": "Online Visitor", "token": token})
        assert online.status_code == 200 and "Sent" in online.text and not served_by_the_edge(online)
        assert leads_named(primary, "Online Visitor") == 1

        assert primary.stop() == 0
        offline = httpx.post(form, data={**VISITOR, "name": "Offline Visitor", "token": token})
        assert offline.status_code == 200 and "Sent" in offline.text and served_by_the_edge(offline)
        # The edge checks the form itself meanwhile: a forged token is still refused.
        forged = httpx.post(form, data={**VISITOR, "name": "Forged Visitor", "token": token[:-4] + "0000"})
        assert forged.status_code == 400

        primary.start()
        wait_until(lambda: leads_named(primary, "Offline Visitor") == 1, timeout=60, what="the kept lead at the primary")
        # Shipped once and forgotten at the edge: a second form goes straight through, and
        # the kept lead is still there once, not twice.
        again = httpx.post(form, data={**VISITOR, "name": "Later Visitor", "token": token})
        assert again.status_code == 200 and leads_named(primary, "Later Visitor") == 1
        assert leads_named(primary, "Offline Visitor") == 1 and leads_named(primary, "Forged Visitor") == 0
        listed = httpx.get(f"{primary.url}/v1/leads", headers=sign_in_again(primary)).json()["items"]
        assert sorted(lead["name"] for lead in listed) == ["Later Visitor", "Offline Visitor", "Online Visitor"]
    finally:
        for svc in (edge, primary):
            if svc is not None and svc.process is not None and svc.process.poll() is None:
                svc.stop()


def sign_in_again(primary: Service) -> dict[str, str]:
    response = httpx.post(f"{primary.url}/v1/auth/login", json={"email": "edge-leads@example.com", "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['accessToken']}"}
