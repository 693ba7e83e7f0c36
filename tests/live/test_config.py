"""A bad setting stops the `qrcontact` command with a message naming it."""

from __future__ import annotations

import os
import subprocess
import sys


def test_a_bad_setting_stops_the_command_naming_it(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "migrate"], capture_output=True, text=True, timeout=60,
        env={**os.environ, "DATA_DIR": str(tmp_path), "TRUSTED_PROXIES": "10.0.0.0/8,nginx"},
    )
    assert result.returncode == 2
    assert "TRUSTED_PROXIES" in result.stderr and "'nginx'" in result.stderr
