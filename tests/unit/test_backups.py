"""The backup settings Litestream is given (the history BACKUP_RETENTION keeps) and no
replica check when there is nothing to check; the backups themselves, with the real
`litestream`, are tests/live/test_backups.py.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
from litestar.testing import TestClient

from app.config import Settings
from app.ops import replication
from tests.support.app import metric, replica_settings


def test_serve_gives_litestream_the_history(tmp_path):
    settings = replica_settings(tmp_path, backup_retention=7 * 24 * 3600)
    env = replication.environment(settings)
    assert env["QRCONTACT_SNAPSHOT_RETENTION"] == f"{7 * 24 * 3600 + 20160}s"


def test_the_history_settings_for_the_default_thirty_days(tmp_path):
    settings = Settings.from_env({"DATA_DIR": str(tmp_path)})
    assert settings.litestream_history() == {
        "QRCONTACT_SNAPSHOT_INTERVAL": "86400s",
        "QRCONTACT_SNAPSHOT_RETENTION": f"{31 * 86400}s",
        "QRCONTACT_L0_RETENTION": "300s",
    }


@pytest.mark.parametrize("change", [{"backup_verify_interval": 0}, {"replica_url": "off"}])
def test_no_check_when_off(tmp_path, change, app_of):
    settings = dataclasses.replace(replica_settings(tmp_path), **change)
    with TestClient(app_of(settings)) as client:
        assert math.isnan(metric(client, "backup_last_verified_timestamp_seconds"))
