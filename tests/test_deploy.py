"""The deployment files: fly.toml's settings, the Dockerfile's shape, and what the
container runs (its entrypoint, command, environment and health check), run here
outside Docker."""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from tests.support.net import free_port
from tests.support.service import with_group_gone

ROOT = Path(__file__).resolve().parents[1]
FLY = tomllib.loads((ROOT / "fly.toml").read_text())
README = (ROOT / "README.md").read_text()
SECRETS = ("REPLICA_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "JWT_SECRET", "SMTP_URL", "METRICS_TOKEN")


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuations joined and comments dropped."""
    instructions, current = [], ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            keyword, _, rest = current.strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
            current = ""
    return instructions


def instruction(name: str) -> list[str]:
    return [rest for keyword, rest in dockerfile() if keyword == name]


def image_env() -> dict[str, str]:
    """ENV of the final stage."""
    stages = [i for i, (keyword, _) in enumerate(dockerfile()) if keyword == "FROM"]
    env: dict[str, str] = {}
    for keyword, rest in dockerfile()[stages[-1]:]:
        if keyword == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(rest))
    return env


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


def healthcheck_command() -> list[str]:
    (check,) = instruction("HEALTHCHECK")
    return json.loads(check.split(" CMD ", 1)[1])


# --- what the container runs, outside Docker --------------------------------------------


@pytest.mark.skipif(os.getuid() != 0, reason="the entrypoint's root path needs root")
def test_the_container_command_serves_passes_its_health_check_and_stops_cleanly(tmp_path):
    (entrypoint,) = [json.loads(e) for e in instruction("ENTRYPOINT")]
    assert entrypoint == ["qrcontact-entrypoint"]  # copied from app/container-entrypoint.sh
    (command,) = [json.loads(c) for c in instruction("CMD")]
    tmp_path.chmod(0o755)
    data = tmp_path / "volume"
    port = free_port()
    # This machine's own user: the entrypoint's chown and setpriv run as in the image,
    # only the account differs (the image's is created by its Dockerfile).
    user = pwd.getpwuid(os.getuid()).pw_name
    env = {
        **os.environ,
        **image_env(),
        # What differs from the container: loopback only, a temp volume, this machine's user.
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "DATA_DIR": str(data),
        "QRCONTACT_USER": user,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    log = tmp_path / "container.log"
    process = subprocess.Popen(
        [str(ROOT / "app" / "container-entrypoint.sh"), *command], env=env,
        stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(healthcheck_command(), env=env, capture_output=True).returncode != 0:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        # The entrypoint exec'd into Litestream, which runs the app as the service user.
        assert Path(f"/proc/{process.pid}/exe").resolve().name == "litestream"
        uid = pwd.getpwnam(user).pw_uid
        assert os.stat(f"/proc/{process.pid}").st_uid == uid
        assert (data / "qrcontact.db").stat().st_uid == uid
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
    finally:
        with_group_gone(process.pid)
    assert "litestream shut down" in log.read_text()
    # The health check fails once the service is gone.
    assert subprocess.run(healthcheck_command(), env=env, capture_output=True).returncode != 0
