"""Settings from the environment: defaults, bad values named, and the generated JWT secret."""

from __future__ import annotations

import stat

import pytest

from app.config import ConfigError, Settings


def test_defaults_need_no_configuration(tmp_path):
    settings = Settings.from_env({"DATA_DIR": str(tmp_path)})
    assert settings.database_path == tmp_path / "qrcontact.db"
    assert settings.replica_url == f"file://{tmp_path / 'replica'}"
    assert (settings.port, settings.jwt_expiry_minutes, settings.refresh_expiry_days) == (8000, 15, 30)
    assert settings.rate_limit_per_minute == 50 and settings.registration == "open"
    assert settings.smtp_url is None and settings.metrics_token is None
    assert settings.public_base_url == "http://localhost:8000"
    assert settings.trusted_proxies == ()
    assert (settings.backup_retention, settings.backup_verify_interval) == (720 * 3600, 24 * 3600)


def test_jwt_secret_is_generated_once_and_kept_private(tmp_path):
    first = Settings.from_env({"DATA_DIR": str(tmp_path)})
    second = Settings.from_env({"DATA_DIR": str(tmp_path)})
    assert first.jwt_secret == second.jwt_secret and len(first.jwt_secret) >= 32
    assert stat.S_IMODE((tmp_path / "jwt_secret").stat().st_mode) == 0o600
    other = Settings.from_env({"DATA_DIR": str(tmp_path / "elsewhere")})
    assert other.jwt_secret != first.jwt_secret


@pytest.mark.parametrize(
    "name, value",
    [
        ("PORT", "eighty"), ("PORT", "70000"), ("JWT_EXPIRY_MINUTES", "0"), ("REFRESH_EXPIRY_DAYS", "-1"),
        ("RATE_LIMIT_PER_MINUTE", "lots"), ("TRUST_PROXY_HEADERS", "maybe"), ("REGISTRATION", "sometimes"),
        ("LOG_LEVEL", "LOUD"), ("PUBLIC_BASE_URL", "ftp://x"), ("PUBLIC_BASE_URL", "example.com"),
        ("REPLICA_URL", "gs://bucket"), ("SMTP_URL", "http://mail"), ("SMTP_URL", "smtp://host:port"),
        ("MAIL_FROM", "no-address"), ("JWT_SECRET", "short"), ("HOST", "everywhere"),
        ("TRUSTED_PROXIES", "10.0.0.0/33"), ("TRUSTED_PROXIES", "10.0.0.0/8,proxy.local"), ("TRUSTED_PROXIES", "*"),
        ("BACKUP_RETENTION", "30 days"), ("BACKUP_RETENTION", "1.5h"), ("BACKUP_RETENTION", "0"),
        ("BACKUP_RETENTION", "59s"), ("BACKUP_VERIFY_INTERVAL", "-1h"), ("BACKUP_VERIFY_INTERVAL", "daily"),
    ],
)
def test_bad_values_name_the_variable(tmp_path, name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({"DATA_DIR": str(tmp_path), name: value})


def test_production_values(tmp_path):
    settings = Settings.from_env(
        {
            "DATA_DIR": str(tmp_path), "PORT": "9000", "PUBLIC_BASE_URL": "https://qr.example.com/",
            "JWT_SECRET": "s" * 40, "REPLICA_URL": "s3://bucket/qr?endpoint=https://fly.storage.tigris.dev",
            "SMTP_URL": "smtp://user:pw@mail.example.com:587", "TRUST_PROXY_HEADERS": "true",
            "REGISTRATION": "invite", "METRICS_TOKEN": "m", "LOG_LEVEL": "debug", "HOST": "0.0.0.0",
        }
    )
    assert settings.public_base_url == "https://qr.example.com"
    assert settings.jwt_secret == "s" * 40 and not (tmp_path / "jwt_secret").exists()
    assert settings.trust_proxy_headers and settings.registration == "invite" and settings.log_level == "DEBUG"
    assert Settings.from_env({"DATA_DIR": str(tmp_path), "REPLICA_URL": "off"}).replication_enabled is False


def test_proxies_and_backups(tmp_path):
    settings = Settings.from_env({
        "DATA_DIR": str(tmp_path), "TRUSTED_PROXIES": " 127.0.0.1/32, 10.1.2.3/8 ,::1,,",
        "BACKUP_RETENTION": "7d", "BACKUP_VERIFY_INTERVAL": "0",
    })
    assert settings.trusted_proxies == ("127.0.0.1/32", "10.0.0.0/8", "::1/128")
    assert settings.backup_retention == 7 * 86400 and settings.backup_verify_interval == 0
    # Litestream's clocks: a snapshot every thirtieth of the history, kept one interval longer.
    assert (settings.snapshot_interval, settings.snapshot_retention) == (20160, 7 * 86400 + 20160)
    assert Settings.from_env({"DATA_DIR": str(tmp_path), "BACKUP_RETENTION": "90s"}).backup_retention == 90


def test_roles_on_fly_and_elsewhere(tmp_path):
    edge_env = {"DATA_DIR": str(tmp_path), "REPLICA_URL": "s3://bucket/qr", "EDGE_TOKEN": "e" * 32}
    fly = {**edge_env, "FLY_REGION": "syd", "PRIMARY_REGION": "ams", "FLY_APP_NAME": "qr"}
    edge = Settings.from_env(fly)
    assert edge.is_edge and edge.on_fly and edge.primary_url is None
    assert edge.primary_internal_url == "http://ams.qr.internal:8001"
    assert not Settings.from_env({**fly, "FLY_REGION": "ams"}).is_edge
    assert not Settings.from_env({"DATA_DIR": str(tmp_path)}).is_edge
    off_fly = Settings.from_env({
        **edge_env, "ROLE": "edge", "PRIMARY_URL": "https://qr.example.com/", "PRIMARY_INTERNAL_URL": "http://10.0.0.2:8001",
    })
    assert off_fly.is_edge and off_fly.primary_url == "https://qr.example.com" and not off_fly.on_fly


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"ROLE": "replica"}, "ROLE"),
        ({"ROLE": "edge", "PRIMARY_INTERNAL_URL": "http://p:8001", "EDGE_TOKEN": "e" * 32, "REPLICA_URL": "s3://b/p"}, "PRIMARY_URL"),
        ({"ROLE": "edge", "PRIMARY_URL": "https://p", "EDGE_TOKEN": "e" * 32, "REPLICA_URL": "s3://b/p"}, "PRIMARY_INTERNAL_URL"),
        ({"ROLE": "edge", "PRIMARY_URL": "https://p", "PRIMARY_INTERNAL_URL": "http://p:8001", "REPLICA_URL": "s3://b/p"}, "EDGE_TOKEN"),
        ({"ROLE": "edge", "PRIMARY_URL": "https://p", "PRIMARY_INTERNAL_URL": "http://p:8001", "EDGE_TOKEN": "e" * 32}, "REPLICA_URL"),
        ({"EDGE_TOKEN": "short"}, "EDGE_TOKEN"),
        ({"PRIMARY_URL": "p.example.com"}, "PRIMARY_URL"),
        ({"FLY_REGION": "ams", "PRIMARY_REGION": "ams", "ROLE": "edge"}, "ROLE"),
    ],
)
def test_bad_region_settings_name_the_variable(tmp_path, env, name):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({"DATA_DIR": str(tmp_path), **env})
