"""Who is the primary (SPEC §11, "Failover by one command"): a small lease object beside the
replica, `primary.json`, that `qrcontact promote` writes and every node reads.

The design, chosen to be the simplest one that cannot have two writers on one replica path:

* **Epochs.** The lease holds an epoch. The first primary never had a lease: it is epoch
  0 and replicates to REPLICA_URL itself. The primary of epoch N > 0 replicates to
  REPLICA_URL + `/epoch-N`, a path no earlier primary ever wrote to. So an old primary
  that has not noticed yet, or comes back, writes at worst to its own old path, which no
  one restores or follows any more; it never mixes its LTX files into the new writer's.
* **Claim.** `qrcontact promote` on an edge reads the lease (none: epoch 0), writes
  `DATA_DIR/primary-lease.json` (the epoch and a random node id it claims), then the
  lease itself with epoch + 1. The running edge sees the lease name it and restarts
  itself as `qrcontact serve`, which restores the newest epoch's replica that has one
  (the old primary's, the first time) into a new history and replicates it to its own
  epoch's path.
* **Who serves what.** At start (`resolve`), a node whose local claim matches the lease
  is the primary of that epoch, whatever ROLE says; a node the lease does not name is
  an edge following the lease's primary (its public and internal URLs, its Fly region,
  its replica path), whatever ROLE says: an old primary that comes back starts as an
  edge. While running, every node reads the lease every LEASE_EVERY seconds: an edge
  follows a new primary without being reconfigured; a primary the lease no longer names
  refuses every write with 503 and Retry-After (`Database.refuse_writes`), which also
  stops it acknowledging scan batches, so the edges keep them for the new primary.
* **Two promotes at once** are not arbitrated (the store gives no compare-and-swap that
  every S3-compatible service supports): the later lease wins, and the loser refuses
  writes within LEASE_EVERY seconds. Run `promote` on one edge.

The lease is read and written with a small S3 client of its own (SigV4 over http.client),
with the credentials and endpoint Litestream uses; a `file://` replica keeps it as a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import hmac
import http.client
import json
import logging
import os
import secrets
import shutil
import signal
import ssl
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

import msgspec

from app.config import Settings

log = logging.getLogger("app.failover")

LEASE_NAME = "primary.json"
HELD_NAME = "primary-lease.json"  # in DATA_DIR: the lease this node claimed
# How often a running node reads the lease: a GET every 2 s per node, ~1.3 million a
# month, cents on any S3 price list; it bounds how long an old primary may acknowledge
# writes after a promote, and how long an edge sends its scans' counts to the old one.
LEASE_EVERY = 2.0
# serve's environment for the app it runs under Litestream: the replica's base URL (the
# app's REPLICA_URL is its epoch's path by then).
BASE_VARIABLE = "QRCONTACT_REPLICA_BASE"


class LeaseError(RuntimeError):
    """The lease could not be read or written."""


class Lease(msgspec.Struct, rename="camel", forbid_unknown_fields=False):
    epoch: int
    node: str  # random, made by promote; names the node that claimed the epoch
    internal_url: str | None = None  # where edges reach its internal port
    public_url: str | None = None  # where edges proxy what they cannot answer (not on Fly)
    region: str | None = None  # its Fly region (edges answer fly-replay to it)
    machine: str | None = None  # its Fly Machine id
    promoted_at: str = ""


# --- where things are ----------------------------------------------------------------------


def base_url(settings: Settings) -> str:
    """The replica URL as configured (REPLICA_URL), also in the app `serve` runs at an epoch's path."""
    return os.environ.get(BASE_VARIABLE) or settings.replica_url


def supported(url: str) -> bool:
    return urlsplit(url).scheme in ("s3", "file")


def epoch_url(base: str, epoch: int) -> str:
    """The replica URL the primary of `epoch` replicates to: the base for epoch 0, else a folder of its own under it."""
    if epoch == 0:
        return base
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + f"/epoch-{epoch}"))


def held_path(settings: Settings) -> Path:
    return settings.data_dir / HELD_NAME


def read_held(settings: Settings) -> Lease | None:
    """The lease this node claimed (None when it never did). Raises LeaseError when it
    cannot be read (promote run as another user than the service's)."""
    try:
        return msgspec.json.decode(held_path(settings).read_bytes(), type=Lease)
    except (FileNotFoundError, msgspec.DecodeError):
        return None
    except OSError as exc:
        raise LeaseError(f"cannot read this node's claim ({exc}): run promote as the service's user") from exc


def write_held(settings: Settings, lease: Lease | None) -> None:
    path = held_path(settings)
    if lease is None:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(f".{HELD_NAME}.{os.getpid()}")
    tmp.write_bytes(msgspec.json.encode(lease))
    os.replace(tmp, path)


# --- the store ---------------------------------------------------------------------------


class LeaseStore:
    """`primary.json` beside the replica: a file for file://, an object for s3://."""

    def __init__(self, base: str, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ) if env is None else env
        self.parts = urlsplit(base)
        if self.parts.scheme == "file":
            self.file = Path(self.parts.path) / LEASE_NAME
            return
        if self.parts.scheme != "s3":
            raise LeaseError(f"failover needs an s3:// or file:// replica, not {self.parts.scheme}://")
        self.file = None
        query = {k: v[-1] for k, v in parse_qs(self.parts.query).items()}
        self.region = query.get("region") or env.get("AWS_REGION") or "us-east-1"
        endpoint = query.get("endpoint") or env.get("AWS_ENDPOINT_URL_S3") or f"https://s3.{self.region}.amazonaws.com"
        if "://" not in endpoint:
            endpoint = f"https://{endpoint}"
        bucket, key = self.parts.netloc, "/".join(p for p in (self.parts.path.strip("/"), LEASE_NAME) if p)
        host = urlsplit(endpoint)
        if query.get("forcePathStyle", "").lower() == "true":
            self.url = f"{endpoint.rstrip('/')}/{bucket}/{quote(key)}"
        else:
            self.url = f"{host.scheme}://{bucket}.{host.netloc}/{quote(key)}"
        self.key_id = env.get("LITESTREAM_ACCESS_KEY_ID") or env.get("AWS_ACCESS_KEY_ID") or ""
        self.secret = env.get("LITESTREAM_SECRET_ACCESS_KEY") or env.get("AWS_SECRET_ACCESS_KEY") or ""
        self.token = env.get("AWS_SESSION_TOKEN")
        self.ca_bundle: str | None = env.get("LITESTREAM_AWS_CA_BUNDLE")  # None: the system's roots
        self._tls: ssl.SSLContext | None = None  # made at the first https request, then reused
        try:  # given, or the scheme's: http.client would read an IPv6 literal's last group as a port
            self.port = urlsplit(self.url).port or (443 if self.url.startswith("https:") else 80)
        except ValueError as exc:
            raise LeaseError(f"the replica's endpoint is not a valid URL: {exc}") from None

    def read(self) -> Lease | None:
        """The lease, None when there is none. Raises LeaseError."""
        try:
            if self.file is not None:
                try:
                    raw = self.file.read_bytes()
                except FileNotFoundError:
                    return None
            else:
                status, raw = self._send("GET", b"")
                if status == 404:
                    return None
                if status != 200:
                    raise LeaseError(f"reading the lease: the store answered {status}: {raw[:200].decode(errors='replace')}")
            return msgspec.json.decode(raw, type=Lease)
        except (OSError, http.client.HTTPException, msgspec.DecodeError) as exc:
            raise LeaseError(f"reading the lease failed: {exc}") from exc

    def write(self, lease: Lease) -> None:
        """Raises LeaseError."""
        body = msgspec.json.encode(lease)
        try:
            if self.file is not None:
                self.file.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.file.with_name(f".{LEASE_NAME}.{os.getpid()}")
                tmp.write_bytes(body)
                os.replace(tmp, self.file)
                return
            status, answer = self._send("PUT", body)
        except (OSError, http.client.HTTPException) as exc:
            raise LeaseError(f"writing the lease failed: {exc}") from exc
        if status not in (200, 201, 204):
            raise LeaseError(f"writing the lease: the store answered {status}: {answer[:200].decode(errors='replace')}")

    def _send(self, method: str, body: bytes) -> tuple[int, bytes]:
        """One signed request to the object store: its status and body. Python's http.client,
        not httpx: an idle primary reads the lease every 2 s, and httpx with what it loads is
        about 4.6 MiB of its memory. Raises OSError and http.client.HTTPException."""
        headers = sign_v4(method, self.url, body, self.region, self.key_id, self.secret, self.token)
        if method == "PUT":
            headers["content-type"] = "application/json"
        parts = urlsplit(self.url)
        if parts.scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context(cafile=self.ca_bundle)
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname, self.port, timeout=10.0, context=self._tls)
        else:
            connection = http.client.HTTPConnection(parts.hostname, self.port, timeout=10.0)
        try:
            connection.request(method, parts.path, body=body or None, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()


def sign_v4(method: str, url: str, body: bytes, region: str, key_id: str, secret: str, token: str | None,
            now: dt.datetime | None = None) -> dict[str, str]:
    """The headers of an AWS Signature Version 4 request to S3 (no query string)."""
    now = now or dt.datetime.now(dt.UTC)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    parts = urlsplit(url)
    payload = hashlib.sha256(body).hexdigest()
    headers = {"host": parts.netloc, "x-amz-content-sha256": payload, "x-amz-date": amz_date}
    if token:
        headers["x-amz-security-token"] = token
    signed = ";".join(sorted(headers))
    canonical = "\n".join([
        method, parts.path or "/", "", *(f"{k}:{headers[k]}" for k in sorted(headers)), "", signed, payload,
    ])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret}".encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
    return headers


def store_for(settings: Settings) -> LeaseStore | None:
    """The lease store of this node's replica; None without replication or on another kind of replica."""
    if not settings.replication_enabled or not supported(base_url(settings)):
        return None
    return LeaseStore(base_url(settings))


# --- deciding the role ---------------------------------------------------------------------


def as_primary(settings: Settings, epoch: int) -> Settings:
    return dataclasses.replace(settings, role="primary", replica_url=epoch_url(base_url(settings), epoch))


def as_edge_of(settings: Settings, lease: Lease) -> Settings:
    """This node's settings as an edge of the lease's primary."""
    return dataclasses.replace(
        settings, role="edge", replica_url=epoch_url(base_url(settings), lease.epoch),
        primary_url=lease.public_url or settings.primary_url,
        primary_internal_url=lease.internal_url or settings.primary_internal_url,
        primary_region=lease.region or settings.primary_region,
    )


def resolve(settings: Settings) -> tuple[Settings, Lease | None]:
    """This node's settings as the lease says (see the module's docstring), and the lease
    it holds as the primary (None for the epoch-0 primary, and for an edge). Raises
    LeaseError when the lease says this node is an edge but it cannot be one."""
    store = store_for(settings)
    if store is None:
        return settings, None
    lease = None
    for attempt in range(3):
        try:
            lease = store.read()
            break
        except LeaseError as exc:
            if attempt == 2:
                # The store is down: Litestream cannot write either. Serve as configured
                # (or as the epoch held); the running check catches up once it is back.
                log.warning("%s; starting as configured", exc)
                held = read_held(settings)
                return (as_primary(settings, held.epoch), held) if held else (settings, None)
    held = read_held(settings)
    if held is not None and (lease is None or (lease.epoch, lease.node) == (held.epoch, held.node)):
        return as_primary(settings, held.epoch), held
    if held is not None:
        log.warning("this node held epoch %d; the lease names epoch %d now", held.epoch, lease.epoch if lease else 0)
        write_held(settings, None)
    if lease is None:
        return settings, None
    if is_me(settings, lease):
        # The lease's primary at this address lost its data folder (a new volume, a new
        # host at the same address): it is still the primary, restored from its replica.
        # As an edge it would send every request to itself.
        log.warning("the lease names this node's address the primary (epoch %d) but its data folder has no claim: "
                    "taking the claim again", lease.epoch)
        write_held(settings, lease)
        return as_primary(settings, lease.epoch), lease
    if not settings.is_edge:
        log.error("the primary role was taken over at epoch %d by %s (%s); this node starts as an edge of it",
                  lease.epoch, lease.internal_url, lease.promoted_at)
    if not settings.edge_token:
        raise LeaseError(f"the lease names another primary (epoch {lease.epoch}, {lease.internal_url}); "
                         "to serve as its edge this node needs EDGE_TOKEN")
    return as_edge_of(settings, lease), None


def restore_newest(settings: Settings, restore: Callable[[Settings], None]) -> None:
    """For the primary of an epoch without a database: restore the newest epoch's replica
    that has one (its own, or the old primary's the first time), with `restore`
    (replication.restore_if_replica_exists). Raises what `restore` raises."""
    if settings.database_path.exists():
        return
    base = base_url(settings)
    held = read_held(settings)
    for epoch in range((held.epoch if held else 0), -1, -1):
        restore(dataclasses.replace(settings, replica_url=epoch_url(base, epoch)))
        if settings.database_path.exists():
            log.info("restored the database from epoch %d's replica", epoch)
            return


# --- promote ----------------------------------------------------------------------------


def promote(settings: Settings, public_url: str | None, internal_url: str | None) -> Lease:
    """Claim the next epoch for this node. Raises LeaseError."""
    store = store_for(settings)
    if store is None:
        raise LeaseError("promote needs replication to an s3:// or file:// replica (REPLICA_URL)")
    lease = store.read()
    held = read_held(settings)
    if lease is not None and held is not None and (lease.epoch, lease.node) == (held.epoch, held.node):
        return lease  # already the primary
    epoch = (lease.epoch if lease else 0) + 1
    if internal_url is None and not settings.on_fly and wildcard(settings.host):
        raise LeaseError(f"HOST={settings.host} is no address the edges can reach: give --internal-url (and --public-url)")
    claim = Lease(
        epoch=epoch, node=secrets.token_hex(8), internal_url=internal_url or own_internal_url(settings),
        public_url=public_url or (None if settings.on_fly else f"http://{settings.host}:{settings.port}"),
        region=settings.fly_region, machine=os.environ.get("FLY_MACHINE_ID"),
        promoted_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    set_aside_database(settings, epoch)
    write_held(settings, claim)
    try:
        store.write(claim)
    except LeaseError:
        write_held(settings, None)
        raise
    return claim


def is_me(settings: Settings, lease: Lease) -> bool:
    """Whether the lease names this node by its address although its data folder holds no
    claim: on Fly its Machine id, elsewhere its default internal URL (never a wildcard
    address, which every node shares; promote refuses to advertise one)."""
    if settings.on_fly:
        return lease.machine is not None and lease.machine == os.environ.get("FLY_MACHINE_ID")
    return not wildcard(settings.host) and lease.internal_url == own_internal_url(settings)


def wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "::", "")  # noqa: S104 - compared, not bound


def own_internal_url(settings: Settings) -> str:
    """This node's internal port as the edges reach it, by default: on Fly its region's
    name on the private network (as config derives the primary's), elsewhere HOST:INTERNAL_PORT."""
    app = os.environ.get("FLY_APP_NAME")
    if settings.on_fly and app:
        return f"http://{settings.fly_region}.{app}.internal:{settings.internal_port}"
    return f"http://{settings.host}:{settings.internal_port}"


def set_aside_database(settings: Settings, epoch: int) -> None:
    """A database left in the data folder (an old primary's) is not the replica's newest:
    moved aside (kept for a look), so that the new primary restores."""
    db = settings.database_path
    if not db.exists():
        return
    aside = db.with_name(f"{db.name}.before-epoch-{epoch}")
    os.replace(db, aside)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(f"{db}{suffix}", f"{aside}{suffix}")
    shutil.rmtree(db.parent / f".{db.name}-litestream", ignore_errors=True)
    log.warning("moved the old database aside to %s", aside)


def current(settings: Settings) -> Settings:
    """The settings with the current epoch's replica (for restore and verify-backup by hand).
    Raises LeaseError."""
    store = store_for(settings)
    lease = store.read() if store is not None else None
    return settings if lease is None else dataclasses.replace(settings, replica_url=epoch_url(base_url(settings), lease.epoch))


# --- while running -----------------------------------------------------------------------


class Restart:
    """Set at an edge the lease names the primary: after draining, the process runs
    `qrcontact serve` again in its place (cli.drained), which serves as the primary."""

    wanted = False


async def watch(settings: Settings, on_lease: Callable[[Lease | None], None], every: float = LEASE_EVERY) -> None:
    """Read the lease every `every` seconds and hand it to `on_lease`, until cancelled."""
    store = store_for(settings)
    if store is None:
        return
    failing = False
    while True:
        await asyncio.sleep(every)
        try:
            lease = await asyncio.to_thread(store.read)
        except LeaseError as exc:
            if not failing:
                log.warning("%s; will retry", exc)
            failing = True
            continue
        failing = False
        try:
            on_lease(lease)
        except Exception:
            log.exception("acting on the lease failed; will look again")


def deposed(held: Lease | None, lease: Lease | None) -> bool:
    """Whether a primary holding `held` (None: epoch 0) has lost the role to `lease`."""
    if lease is None:
        return False
    return held is None or (lease.epoch, lease.node) != (held.epoch, held.node)


def describe(lease: Lease) -> str:
    return json.dumps(msgspec.to_builtins(lease))


def refuse_when_deposed(db, held: Lease | None) -> Callable[[Lease | None], None]:
    """The primary's lease check: once the lease names another node, every write is refused."""

    def on_lease(lease: Lease | None) -> None:
        if db.refuse_writes is None and deposed(held, lease):
            assert lease is not None
            log.error("the lease names another primary (epoch %d, %s): refusing every write from now on",
                      lease.epoch, lease.internal_url)
            db.refuse_writes = f"this server is no longer the primary (epoch {lease.epoch} is); try again shortly"

    return on_lease


def restart_when_named(settings: Settings, follow: Callable[[Lease], None]) -> Callable[[Lease | None], None]:
    """An edge's lease check: a new primary is followed (`follow`); when the lease names this
    node (promote ran here), the edge drains and restarts as the primary."""
    epoch = [0]

    def on_lease(lease: Lease | None) -> None:
        if lease is None or Restart.wanted:
            return
        held = read_held(settings)
        if held is not None and (lease.epoch, lease.node) == (held.epoch, held.node):
            log.warning("the lease names this node the primary (epoch %d): restarting as the primary", lease.epoch)
            Restart.wanted = True
            os.kill(os.getpid(), signal.SIGTERM)  # uvicorn drains, then cli.drained runs serve
        elif lease.epoch != epoch[0]:
            epoch[0] = lease.epoch
            follow(lease)

    return on_lease
