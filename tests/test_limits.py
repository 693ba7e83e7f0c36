"""Rate limits on the API, and that every setting is documented."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from litestar.testing import TestClient

from app.config import Settings
from app.main import create_app
from tests.conftest import assert_problem, make_settings

README = Path(__file__).parent.parent / "README.md"


def test_api_rate_limit_answers_429_with_retry_after(tmp_path):
    with TestClient(create_app(make_settings(tmp_path, rate_limit_per_minute=5))) as client:
        statuses = [client.get("/v1/me").status_code for _ in range(5)]
        assert statuses == [401] * 5
        problem = assert_problem(client.get("/v1/me"), 429)
        response = client.get("/v1/me")
        assert int(response.headers["retry-after"]) > 0
        assert response.headers["ratelimit-remaining"] == "0"
        assert problem["title"] == "Too Many Requests"
        # Public pages are not under the API limit.
        assert client.get("/health").status_code == 200


def test_fly_client_ip_counts_only_behind_a_trusted_proxy(tmp_path):
    for trusted, expected in ((False, 429), (True, 401)):
        settings = make_settings(tmp_path / str(trusted), rate_limit_per_minute=2, trust_proxy_headers=trusted)
        with TestClient(create_app(settings)) as client:
            for i in range(2):
                client.get("/v1/me", headers={"Fly-Client-IP": f"10.0.0.{i}"})
            response = client.get("/v1/me", headers={"Fly-Client-IP": "10.0.0.9", "X-Forwarded-For": "10.0.0.10"})
            assert response.status_code == expected


def test_every_setting_is_in_the_readme_table():
    table = set(re.findall(r"^\| `([A-Z_]+)` \|", README.read_text(), re.M))
    names = {field.name.upper() for field in dataclasses.fields(Settings)}
    assert names <= table, f"undocumented: {sorted(names - table)}"
