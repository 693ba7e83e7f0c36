"""The k-factor: weekly cohorts built from accounts and invitations with chosen
timestamps, compared number for number, and the viral_k_factor gauge."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.support.app import create_card, register
from tests.support.db import execute


def stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def week_label(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def weeks_between(first: date, last: date) -> list[str]:
    monday = first - timedelta(days=first.weekday())
    labels = []
    while monday <= last:
        labels.append(week_label(monday))
        monday += timedelta(days=7)
    return labels


class Cohorts:
    """Accounts and invitations written straight into the database, at chosen times."""

    def __init__(self, client, settings) -> None:
        self.settings = settings
        self.admin = register(client)
        # The admin's own account stays out of every period.
        execute(settings, "UPDATE users SET created_at = ?", (stamp(datetime.now(UTC) - timedelta(days=400)),))
        self.card = create_card(client, self.admin["headers"])
        self.sender = self.admin["user"]["userId"]

    def accounts(self, at: datetime, count: int) -> None:
        for _ in range(count):
            execute(
                self.settings,
                "INSERT INTO users (user_id, email, password_hash, created_at) VALUES (?, ?, 'x', ?)",
                (uuid.uuid4().hex, f"{uuid.uuid4().hex}@example.com", stamp(at)),
            )

    def invitations(self, at: datetime, count: int, converted: int = 0, failed: int = 0) -> None:
        for n in range(count):
            status = "converted" if n < converted else "failed" if n < converted + failed else "sent"
            execute(
                self.settings,
                """INSERT INTO invitations (invitation_id, token_hash, card_id, sender_id, channel, recipient,
                    recipient_key, day, status, created_at, sent_at, converted_at)
                SELECT ?, ?, id, ?, 'email', 'x@example.com', ?, ?, ?, ?, ?, ? FROM cards WHERE card_id = ?""",
                (
                    uuid.uuid4().hex, uuid.uuid4().hex, self.sender, uuid.uuid4().hex, at.date().isoformat(), status,
                    stamp(at), stamp(at), stamp(at + timedelta(hours=2)) if status == "converted" else None,
                    self.card["cardId"],
                ),
            )


def cohort(week: str, size: int, sent: int, conversions: int) -> dict:
    return {
        "cohortWeek": week,
        "cohortSize": size,
        "invitationsSent": sent,
        "conversions": conversions,
        "conversionRate": conversions / sent if sent else None,
        "kFactor": conversions / size if size else None,
    }


def k_factor(client, headers, period: str) -> dict:
    response = client.get(f"/v1/viral/k-factor?period={period}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def cohorts(client, settings) -> tuple[Cohorts, datetime]:
    now = datetime.now(UTC)
    monday = datetime.combine(now.date() - timedelta(days=now.weekday()), datetime.min.time(), UTC)
    wednesday = lambda weeks_ago: monday - timedelta(weeks=weeks_ago) + timedelta(days=2, hours=12)  # noqa: E731
    data = Cohorts(client, settings)
    data.accounts(wednesday(3), 4)
    data.invitations(wednesday(3), 12, converted=3, failed=2)  # 10 sent: failed ones were never sent
    data.accounts(wednesday(2), 2)
    data.invitations(wednesday(2), 4)
    data.invitations(wednesday(1), 3, converted=1)  # no new account that week
    data.accounts(now - timedelta(minutes=1), 1)
    # Just outside 30 days, inside 90.
    data.accounts(now - timedelta(days=30, hours=1), 1)
    data.invitations(now - timedelta(days=30, hours=1), 2, converted=1)
    # Outside every period.
    data.accounts(now - timedelta(weeks=20), 5)
    data.invitations(now - timedelta(weeks=20), 5, converted=5)
    return data, now


def test_thirty_days_of_cohorts(client, cohorts):
    data, now = cohorts
    result = k_factor(client, data.admin["headers"], "30d")
    weeks = weeks_between((now - timedelta(days=30)).date(), now.date())
    known = {
        week_label((now - timedelta(weeks=3)).date()): cohort("", 4, 10, 3),
        week_label((now - timedelta(weeks=2)).date()): cohort("", 2, 4, 0),
        week_label((now - timedelta(weeks=1)).date()): cohort("", 0, 3, 1),
        week_label(now.date()): cohort("", 1, 0, 0),
    }
    expected = [{**known.get(week, cohort("", 0, 0, 0)), "cohortWeek": week} for week in weeks]
    assert result == {"period": "30d", "kFactor": 4 / 7, "cohorts": expected}
    # Spelled out for the three busy weeks: 3 of 10 converted from 4 new accounts...
    assert [c["kFactor"] for c in result["cohorts"][-4:]] == [0.75, 0.0, None, 0.0]
    assert [c["conversionRate"] for c in result["cohorts"][-4:]] == [0.3, 0.0, 1 / 3, None]


def test_ninety_days_take_in_the_older_cohort(client, cohorts):
    data, now = cohorts
    result = k_factor(client, data.admin["headers"], "90d")
    assert result["kFactor"] == 5 / 8
    assert [c["cohortWeek"] for c in result["cohorts"]] == weeks_between((now - timedelta(days=90)).date(), now.date())
    older = week_label((now - timedelta(days=30, hours=1)).date())
    assert next(c for c in result["cohorts"] if c["cohortWeek"] == older) == cohort(older, 1, 2, 1)
    assert sum(c["cohortSize"] for c in result["cohorts"]) == 8
    assert sum(c["invitationsSent"] for c in result["cohorts"]) == 19
    assert sum(c["conversions"] for c in result["cohorts"]) == 5


def test_seven_days(client, settings):
    now = datetime.now(UTC)
    data = Cohorts(client, settings)
    data.accounts(now - timedelta(hours=1), 2)
    data.invitations(now - timedelta(hours=1), 3, converted=2)
    data.invitations(now - timedelta(days=6), 1, converted=1)
    data.accounts(now - timedelta(days=8), 3)  # outside
    result = k_factor(client, data.admin["headers"], "7d")
    weeks = weeks_between((now - timedelta(days=7)).date(), now.date())
    assert len(weeks) == 2
    counts = {week: [0, 0, 0] for week in weeks}
    for at, size, sent, conversions in ((now - timedelta(hours=1), 2, 3, 2), (now - timedelta(days=6), 0, 1, 1)):
        bucket = counts[week_label(at.date())]
        bucket[0] += size
        bucket[1] += sent
        bucket[2] += conversions
    assert result == {"period": "7d", "kFactor": 3 / 2, "cohorts": [cohort(week, *counts[week]) for week in weeks]}


def test_no_new_accounts_means_no_k_factor(client, settings):
    data = Cohorts(client, settings)
    result = k_factor(client, data.admin["headers"], "7d")
    assert result["kFactor"] is None
    assert all(c == cohort(c["cohortWeek"], 0, 0, 0) for c in result["cohorts"])
    metrics = client.get("/metrics").text
    assert math.isnan(float(next(line for line in metrics.splitlines() if line.startswith('viral_k_factor{period="7d"}')).split()[-1]))


def test_the_gauge_matches_the_endpoint_on_every_scrape(client, cohorts):
    data, _ = cohorts
    metrics = client.get("/metrics").text
    values = {
        line.split('"')[1]: float(line.split()[-1]) for line in metrics.splitlines() if line.startswith("viral_k_factor{")
    }
    assert values == {"7d": values["7d"], "30d": 4 / 7, "90d": 5 / 8}
    assert values["7d"] == k_factor(client, data.admin["headers"], "7d")["kFactor"]
    data.accounts(datetime.now(UTC), 1)
    metrics = client.get("/metrics").text
    assert f'viral_k_factor{{period="30d"}} {4 / 8}' in metrics


def test_a_bad_period_is_refused(client, user):
    response = client.get("/v1/viral/k-factor?period=1y", headers=user["headers"])
    assert 400 <= response.status_code < 500
