"""The deployment files: fly.toml's settings, the Dockerfile's shape, and what the
container runs (its entrypoint, command, environment and health check), run here
outside Docker."""

from __future__ import annotations

import json
import re
import tomllib

from tests.support import ROOT
from tests.support.deploy import image_env, instruction

FLY = tomllib.loads((ROOT / "fly.toml").read_text())
README = (ROOT / "README.md").read_text()
SECRETS = ("REPLICA_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "JWT_SECRET", "SMTP_URL", "METRICS_TOKEN")


def seconds(duration: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m)", duration).groups()
    return int(number) * {"ms": 0.001, "s": 1, "m": 60}[unit]


# --- fly.toml --------------------------------------------------------------------------


def test_fly_gives_the_final_sync_time_and_sends_sigterm():
    assert seconds(FLY["kill_timeout"]) >= 30
    assert FLY["kill_signal"] == "SIGTERM"


def test_fly_mounts_the_volume_on_the_data_dir():
    (mount,) = FLY["mounts"]
    assert mount["destination"] == "/data" == FLY["env"]["DATA_DIR"]


def test_fly_serves_port_8000_and_checks_health():
    service = FLY["http_service"]
    assert service["internal_port"] == 8000 == int(FLY["env"]["PORT"])
    assert FLY["env"]["HOST"] == "0.0.0.0"
    assert [(c["method"], c["path"]) for c in service["checks"]] == [("GET", "/health")]
    # SQLite has one writer: the Machine must not be stopped or doubled behind our back.
    assert service["auto_stop_machines"] == "off" and service["min_machines_running"] == 1


def test_fly_scrapes_metrics():
    assert FLY["metrics"] == {"port": 8000, "path": "/metrics"}


def test_fly_env_holds_documented_settings_and_no_secrets():
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", README, re.M))
    assert set(FLY["env"]) <= documented, sorted(set(FLY["env"]) - documented)
    assert not set(FLY["env"]) & set(SECRETS)
    header = (ROOT / "fly.toml").read_text().split("app =")[0]
    for secret in SECRETS:
        assert secret in header, f"fly.toml does not name the secret {secret}"


# --- Dockerfile ------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_slim_and_installs_from_wheels():
    bases = instruction("FROM")
    assert len(bases) >= 2
    assert re.match(r"python:\$\{PYTHON_VERSION\}-slim", bases[-1])
    run = " ".join(instruction("RUN"))
    assert "pip wheel" in run and "--no-index --find-links=/wheels qrcontact" in run


def test_dockerfile_runs_serve_with_data_on_a_volume():
    assert [json.loads(c) for c in instruction("CMD")] == [["qrcontact", "serve"]]
    assert image_env()["DATA_DIR"] == "/data" and image_env()["HOST"] == "0.0.0.0"
    assert json.loads(instruction("VOLUME")[0]) == ["/data"]
    assert instruction("EXPOSE") == [image_env()["PORT"]]
    assert instruction("STOPSIGNAL") == ["SIGTERM"]


def test_the_service_user_is_not_root():
    run = " ".join(instruction("RUN"))
    user = image_env()["QRCONTACT_USER"]
    uid = re.search(rf"useradd [^&]*--uid (\d+)[^&]* {user}\b", run)
    assert uid and int(uid.group(1)) != 0


# --- what the container runs, outside Docker --------------------------------------------


