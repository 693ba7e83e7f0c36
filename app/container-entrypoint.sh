#!/bin/sh
# Container entrypoint: give the data volume to the service user, then run the command
# (CMD, normally `qrcontact serve`) as that user. Fly mounts a new volume owned by root,
# so the image cannot simply start as the service user; nothing but this script runs as
# root. Started as another user (docker run --user …), it runs the command unchanged.
set -eu

if [ "$(id -u)" = 0 ]; then
    user="${QRCONTACT_USER:-qrcontact}"
    data="${DATA_DIR:-/data}"
    mkdir -p "$data"
    # Only what is not the user's yet, so a restart does not rewrite the whole volume.
    find "$data" -xdev ! -user "$user" -exec chown "$user:" {} +
    # HOME too: Litestream's S3 client looks for ~/.aws, and /root is not readable.
    export HOME="$data"
    exec setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups --inh-caps=-all -- "$@"
fi
exec "$@"
