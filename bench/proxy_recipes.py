"""The Caddy and nginx recipes of docs/operations.md, run for real in front of `qrcontact serve`.

Needs `nginx` and `caddy` on PATH (Debian: apt-get install nginx caddy). The service runs
with RATE_LIMIT_PER_MINUTE=2 and TRUSTED_PROXIES=127.0.0.1/32; clients connect to the
proxy from 127.0.0.2-127.0.0.4, so the proxy sees distinct addresses. Each must get its
own limit, and made-up X-Forwarded-For/Forwarded headers must not get a limited client out.

    .venv/bin/python bench/proxy_recipes.py
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

QRCONTACT = Path(sys.executable).parent / "qrcontact"

NGINX = """\
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{}}
http {{
  access_log off;
  client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp};
  uwsgi_temp_path {tmp}; scgi_temp_path {tmp};
  server {{
    listen 127.0.0.1:{proxy_port};
    # The block in docs/operations.md:
    location / {{
      proxy_pass http://127.0.0.1:{app_port};
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header Forwarded "";
    }}
  }}
}}
"""

CADDY = """\
{{
	admin off
	auto_https off
}}
http://127.0.0.1:{proxy_port} {{
	reverse_proxy 127.0.0.1:{app_port} {{
		header_up -Forwarded
	}}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def drill(kind: str) -> None:
    app_port, proxy_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {**os.environ, "DATA_DIR": str(folder), "PORT": str(app_port), "REPLICA_URL": "off",
               "RATE_LIMIT_PER_MINUTE": "2", "TRUSTED_PROXIES": "127.0.0.1/32"}
        app = subprocess.Popen([str(QRCONTACT), "serve"], env=env, stderr=open(folder / "app.log", "w"))
        config = folder / "proxy.conf"
        config.write_text((NGINX if kind == "nginx" else CADDY).format(tmp=folder, proxy_port=proxy_port, app_port=app_port))
        if kind == "nginx":
            command = ["nginx", "-c", str(config), "-p", str(folder), "-g", "daemon off;"]
        else:
            command = ["caddy", "run", "--config", str(config), "--adapter", "caddyfile"]
        proxy = subprocess.Popen(command, stderr=open(folder / "proxy.log", "w"),
                                 env={**os.environ, "HOME": str(folder), "XDG_DATA_HOME": str(folder),
                                      "XDG_CONFIG_HOME": str(folder)})
        try:
            wait_for(f"http://127.0.0.1:{app_port}/health")
            wait_for(f"http://127.0.0.1:{proxy_port}/health")

            def status(source: str, **headers: str) -> int:
                with httpx.Client(transport=httpx.HTTPTransport(local_address=source)) as client:
                    return client.get(f"http://127.0.0.1:{proxy_port}/v1/me", headers=headers).status_code

            a = [status("127.0.0.2") for _ in range(3)]
            b = status("127.0.0.3")
            spoofed = (status("127.0.0.2", **{"X-Forwarded-For": "203.0.113.50"}),
                       status("127.0.0.2", Forwarded="for=203.0.113.51"))
            chain = [status("127.0.0.4", **{"X-Forwarded-For": f"203.0.113.{52 + i}, 127.0.0.1"}) for i in range(3)]
            print(f"{kind}: client A {a}, client B {b}, A spoofing XFF/Forwarded {list(spoofed)}, "
                  f"C with made-up chains {chain}")
            ok = a == [401, 401, 429] and b == 401 and spoofed == (429, 429) and chain == [401, 401, 429]
            print(f"{kind}: {'each client has its own limit; spoofing does not help' if ok else 'FAILED'}")
        finally:
            for process in (proxy, app):
                process.send_signal(signal.SIGTERM)
                process.wait(30)


if __name__ == "__main__":
    for kind in ("nginx", "caddy"):
        drill(kind)
