"""What the container runs (its entrypoint, command, environment and health check), run
here outside Docker as a real process.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.deploy import image_env, instruction
from tests.support.net import free_port
from tests.support.service import with_group_gone


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


def healthcheck_command() -> list[str]:
    (check,) = instruction("HEALTHCHECK")
    return json.loads(check.split(" CMD ", 1)[1])
