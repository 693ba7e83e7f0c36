"""Limits: the per-IP rate limit, login throttling, body and password sizes, and that every setting is documented."""

from __future__ import annotations

import dataclasses
import re

import pytest
from argon2 import PasswordHasher
from litestar.testing import TestClient

from app.accounts import hashing
from app.api.limits import ThrottlePolicy, network_of
from app.config import Settings
from tests.support import ROOT
from tests.support.app import PASSWORD, assert_problem, make_settings, register
from tests.support.console import ORIGIN, csrf_of, post_form
from tests.support.db import query

README = ROOT / "README.md"
LIMITS_DOC = ROOT / "docs" / "limits.md"


def test_api_rate_limit_answers_429_with_retry_after(tmp_path, app_of):
    with TestClient(app_of(make_settings(tmp_path, rate_limit_per_minute=5))) as client:
        statuses = [client.get("/v1/me").status_code for _ in range(5)]
        assert statuses == [401] * 5
        problem = assert_problem(client.get("/v1/me"), 429)
        response = client.get("/v1/me")
        assert int(response.headers["retry-after"]) > 0
        assert response.headers["ratelimit-remaining"] == "0"
        assert problem["title"] == "Too Many Requests"
        # Public pages are not under the API limit.
        assert client.get("/health").status_code == 200


def test_fly_client_ip_counts_only_behind_a_trusted_proxy(tmp_path, app_of):
    for trusted, expected in ((False, 429), (True, 401)):
        settings = make_settings(tmp_path / str(trusted), rate_limit_per_minute=2, trust_proxy_headers=trusted)
        with TestClient(app_of(settings)) as client:
            for i in range(2):
                client.get("/v1/me", headers={"Fly-Client-IP": f"10.0.0.{i}"})
            response = client.get("/v1/me", headers={"Fly-Client-IP": "10.0.0.9", "X-Forwarded-For": "10.0.0.10"})
            assert response.status_code == expected


def test_every_setting_is_in_the_readme_table():
    table = set(re.findall(r"^\| `([A-Z_]+)` \|", README.read_text(), re.M))
    names = {field.name.upper() for field in dataclasses.fields(Settings)}
    assert names <= table, f"undocumented: {sorted(names - table)}"


# --- the per-IP limit on /v1 -------------------------------------------------------------


def test_rate_limit_headers_follow_the_ietf_draft(tmp_path, app_of):
    with TestClient(app_of(make_settings(tmp_path, rate_limit_per_minute=3))) as client:
        remaining = []
        for _ in range(3):
            response = client.get("/v1/me")
            assert response.headers["ratelimit-limit"] == "3"
            assert response.headers["ratelimit-policy"] == "3; w=60"
            assert 1 <= int(response.headers["ratelimit-reset"]) <= 60
            remaining.append(int(response.headers["ratelimit-remaining"]))
        assert remaining == [2, 1, 0]
        refused = assert_problem(client.get("/v1/me"), 429)
        assert refused["detail"]
        response = client.get("/v1/me")
        assert response.headers["ratelimit-remaining"] == "0"
        assert 1 <= int(response.headers["retry-after"]) <= 60
        assert response.headers["retry-after"] == response.headers["ratelimit-reset"]


def test_ipv6_clients_are_limited_by_their_64_block(tmp_path, app_of):
    assert network_of("2001:db8:1:2:aaaa::1") == network_of("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert network_of("2001:db8:1:3::1") != network_of("2001:db8:1:2::1")
    assert network_of("::ffff:192.0.2.7") == "192.0.2.7"
    assert network_of("192.0.2.7") == "192.0.2.7"
    settings = make_settings(tmp_path, rate_limit_per_minute=2, trust_proxy_headers=True)
    with TestClient(app_of(settings)) as client:
        for suffix in ("1", "2"):
            client.get("/v1/me", headers={"Fly-Client-IP": f"2001:db8:0:1::{suffix}"})
        assert client.get("/v1/me", headers={"Fly-Client-IP": "2001:db8:0:1:ffff::3"}).status_code == 429
        assert client.get("/v1/me", headers={"Fly-Client-IP": "2001:db8:0:2::1"}).status_code == 401


# --- the console, under the same limit ---------------------------------------------------

# The console's forms: what each is sent the n-th time (a new address each time, so
# nothing but the rate limit could refuse it: no login throttle, no taken email).
CONSOLE_FORMS = {
    "login": ("/app/login", lambda n: {"email": f"guess{n}@example.com", "password": "wrong password!"}),
    "register": ("/app/register", lambda n: {"email": f"new{n}@example.com", "password": PASSWORD}),
    "password-reset": ("/app/password-reset", lambda n: {"email": f"forgot{n}@example.com"}),
}


@pytest.mark.parametrize("form", CONSOLE_FORMS)
def test_console_forms_are_under_the_apis_limit_in_the_same_bucket(tmp_path, form, app_of):
    path, fields = CONSOLE_FORMS[form]
    with TestClient(app_of(make_settings(tmp_path, rate_limit_per_minute=4)), base_url=ORIGIN) as client:
        csrf = csrf_of(client.get("/app/register").text)  # reading a page (but the login page) is free
        assert_problem(client.get("/v1/me"), 401)  # one of the four, spent on the API
        answered = [post_form(client, path, csrf, **fields(n)).status_code for n in range(3)]
        assert 429 not in answered and all(status < 500 for status in answered)
        refused = post_form(client, path, csrf, **fields(3))
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("text/html")
        assert "Too many attempts" in refused.text
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert_problem(client.get("/v1/me"), 429)  # one bucket for both doors
        assert client.get("/app/register").status_code == 200
        if form == "register":
            assert query(client.app.state.settings, "SELECT count(*) FROM users") == [(3,)]


def test_the_login_page_counts_against_the_limit(tmp_path, app_of):
    with TestClient(app_of(make_settings(tmp_path, rate_limit_per_minute=2)), base_url=ORIGIN) as client:
        assert [client.get("/app/login").status_code for _ in range(2)] == [200, 200]
        refused = client.get("/app/login")
        assert refused.status_code == 429 and "Too many attempts" in refused.text
        assert int(refused.headers["retry-after"]) >= 1


def test_a_body_just_under_the_limit_is_read(client, user):
    padding = 64 * 1024 - 200
    body = '{"fullName": "A", "email": "a@example.com", "title": "' + "t" * padding + '"}'
    response = client.post("/v1/cards", content=body, headers={**user["headers"], "Content-Type": "application/json"})
    # Read and judged on its content (the title is too long), not refused for its size.
    assert_problem(response, 422)


# --- passwords: the maximum is enforced before anything is hashed -----------------------


class CountingHasher(PasswordHasher):
    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.calls: list[int] = []

    def hash(self, password, **kwargs):
        self.calls.append(len(password))
        return super().hash(password, **kwargs)

    def verify(self, hash, password):
        self.calls.append(len(password))
        return super().verify(hash, password)


def test_passwords_over_the_maximum_are_refused_before_any_hashing(client, monkeypatch):
    hasher = CountingHasher()
    monkeypatch.setattr(hashing, "HASHER", hasher)
    hashing._decoy_hash.cache_clear()
    too_long = "p" * 1025
    refused = client.post("/v1/auth/register", json={"email": "big@example.com", "password": too_long, "marketingConsent": False})
    assert_problem(refused, 422)
    assert_problem(client.post("/v1/auth/login", json={"email": "big@example.com", "password": too_long}), 422)
    assert_problem(client.post("/v1/auth/login", json={"email": "big@example.com", "password": "p" * 100_000}), 413)
    assert hasher.calls == []
    # The counter does count: the longest allowed password is hashed once, and checked once.
    longest = "p" * 1024
    registration = {"email": "big@example.com", "password": longest, "marketingConsent": False}
    assert client.post("/v1/auth/register", json=registration).status_code == 201
    assert client.post("/v1/auth/login", json={"email": "big@example.com", "password": longest}).status_code == 200
    assert hasher.calls == [1024, 1024]
    hashing._decoy_hash.cache_clear()


# --- login throttling --------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(client) -> Clock:
    clock = Clock()
    client.app.state.login_throttle.clock = clock
    return clock


def login(client, email: str, password: str = "wrong password!", ip: str | None = None):
    headers = {"Fly-Client-IP": ip} if ip else {}
    return client.post("/v1/auth/login", json={"email": email, "password": password}, headers=headers)


def test_failed_logins_get_growing_delays_without_hashing(client, clock, monkeypatch):
    register(client, "victim@example.com")
    hasher = CountingHasher()
    monkeypatch.setattr(hashing, "HASHER", hasher)
    for _ in range(ThrottlePolicy().free_per_client):
        assert_problem(login(client, "victim@example.com"), 401)
    waits = []
    for _ in range(4):
        hashed = len(hasher.calls)
        throttled = login(client, "Victim@Example.com")  # the same account, whatever the case
        assert_problem(throttled, 429)
        assert len(hasher.calls) == hashed, "a throttled attempt was hashed"
        waits.append(int(throttled.headers["retry-after"]))
        clock.now += waits[-1]
        assert_problem(login(client, "victim@example.com"), 401)
    assert waits == [1, 2, 4, 8]


def test_the_delay_is_capped_and_the_owner_gets_back_in(client, clock):
    register(client, "capped@example.com")
    policy = ThrottlePolicy()
    waits = []
    for _ in range(40):
        response = login(client, "capped@example.com")
        if response.status_code == 429:
            waits.append(int(response.headers["retry-after"]))
            clock.now += waits[-1]
    assert max(waits) == policy.max_delay_per_client
    assert waits[-3:] == [policy.max_delay_per_client] * 3
    # Never locked out for good: once the longest delay has passed, the password works,
    # and a success clears the count.
    assert_problem(login(client, "capped@example.com"), 401)
    assert_problem(login(client, "capped@example.com", PASSWORD), 429)
    clock.now += policy.max_delay_per_client
    assert login(client, "capped@example.com", PASSWORD).status_code == 200
    assert_problem(login(client, "capped@example.com"), 401)


def test_unknown_emails_are_throttled_like_real_ones(client, clock):
    register(client, "real@example.com")
    for email in ("real@example.com", "ghost@example.com"):
        statuses = [login(client, email).status_code for _ in range(ThrottlePolicy().free_per_client + 1)]
        assert statuses == [401] * ThrottlePolicy().free_per_client + [429], email


def test_an_attackers_failures_do_not_lock_the_owner_out(tmp_path, app_of):
    settings = make_settings(tmp_path, trust_proxy_headers=True)
    with TestClient(app_of(settings)) as client:
        client.app.state.login_throttle.clock = Clock()
        register(client, "owner@example.com")
        # The owner logged in from home before.
        assert login(client, "owner@example.com", PASSWORD, ip="198.51.100.7").status_code == 200
        policy = ThrottlePolicy()
        # One attacker: delayed after a few failures, the owner elsewhere is not.
        for _ in range(policy.free_per_client):
            login(client, "owner@example.com", ip="203.0.113.1")
        assert_problem(login(client, "owner@example.com", ip="203.0.113.1"), 429)
        assert login(client, "owner@example.com", PASSWORD, ip="192.0.2.50").status_code == 200
        # Many attackers, a few tries each: past the account-wide allowance every new
        # network waits too, but not the owner's known one.
        for i in range(policy.free_per_account):
            login(client, "owner@example.com", ip=f"203.0.113.{100 + i}")
        throttled = login(client, "owner@example.com", PASSWORD, ip="192.0.2.99")
        assert_problem(throttled, 429)
        assert int(throttled.headers["retry-after"]) <= policy.max_delay_per_account
        assert login(client, "owner@example.com", PASSWORD, ip="198.51.100.7").status_code == 200


def test_the_limits_page_states_the_login_throttling_policy_in_force():
    policy, text = ThrottlePolicy(), " ".join(LIMITS_DOC.read_text().split())
    for phrase in (
        f"{policy.free_per_client} failures are free",
        f"at most **{policy.max_delay_per_client // 60} minutes**",
        f"{policy.free_per_account} failures are free",
        f"at most **{policy.max_delay_per_account} s**",
        f"in the last {policy.known_for // 86400} days",
        f"forgotten {policy.forget_after // 3600} hours",
    ):
        assert phrase in text, phrase


def test_the_login_throttle_keeps_a_bounded_number_of_records_oldest_forgotten_first():
    import asyncio

    from litestar.stores.memory import MemoryStore

    from app.api.limits import LoginThrottle
    from app.errors import Limited

    async def scenario() -> None:
        store = MemoryStore()
        policy = ThrottlePolicy(max_records=6)
        throttle = LoginThrottle(store, policy)
        for _ in range(policy.free_per_client):
            await throttle.begin("victim@example.com", "198.51.100.1")
        with pytest.raises(Limited):
            await throttle.begin("victim@example.com", "198.51.100.1")
        # Failures for other accounts: two records each (the account, the account and network).
        for n in range(2):
            await throttle.begin(f"other{n}@example.com", "198.51.100.2")
        assert len(throttle) == 6
        assert await store.exists("account:victim@example.com")  # still within the cap: still delayed
        with pytest.raises(Limited):
            await throttle.begin("victim@example.com", "198.51.100.1")
        await throttle.begin("other2@example.com", "198.51.100.2")
        assert len(throttle) == 6
        assert not await store.exists("account:victim@example.com")  # the oldest, forgotten
        assert not await store.exists("account:victim@example.com|client:198.51.100.1")
        await throttle.begin("victim@example.com", "198.51.100.1")

    asyncio.run(scenario())
