"""Settings: one frozen object built from the environment once, at start.

Nothing else reads the environment; tests build their own Settings and pass them to
`create_app`. A bad value raises `ConfigError` naming the variable, and the command
line turns that into a one-line message and exit status 2.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from email.headerregistry import HeaderRegistry
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from litestar.di import NamedDependency

RegistrationMode = Literal["open", "invite", "closed"]
Role = Literal["primary", "edge"]
DEFAULT_MAIL_FROM = "QR Contact <noreply@localhost>"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DAY = 24 * 3600
DURATION = re.compile(r"^([0-9]{1,9})([smhd])$")
SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600, "d": DAY}


class ConfigError(ValueError):
    """A setting has a value the service cannot run with."""


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    database_path: Path
    jwt_secret: str
    host: str = "127.0.0.1"
    port: int = 8000
    public_base_url: str = "http://localhost:8000"
    jwt_expiry_minutes: int = 15
    refresh_expiry_days: int = 30
    replica_url: str = "off"
    smtp_url: str | None = None
    mail_from: str = DEFAULT_MAIL_FROM
    rate_limit_per_minute: int = 50
    scanner_rate_limit_per_minute: int = 3000
    # The contact exchange form (app/leads): leads kept per client IP and per card in an hour.
    leads_per_ip_hour: int = 10
    leads_per_card_hour: int = 200
    trust_proxy_headers: bool = False
    # CIDRs of the peers whose X-Forwarded-For / Forwarded the limits believe (app/proxies.py).
    # Text, checked at start: Litestar's signature models cannot hold network objects.
    trusted_proxies: tuple[str, ...] = ()
    # A MaxMind or DB-IP .mmdb for visitors' countries; None: the table iptocc ships (app/public/countries.py).
    geoip_database_path: Path | None = None
    # Seconds of restorable history the replica keeps, and between the service's own
    # restore-and-check of it (0: never).
    backup_retention: int = 30 * DAY
    events_retention: int = 90 * DAY  # how long the events table keeps an event (SPEC §9)
    # Webhooks (app/events/webhooks.py): whether an endpoint may be on a loopback or private
    # address (a CRM on the team's own network), and the waits before each retry (seconds).
    webhook_allow_private: bool = False
    webhook_retry_schedule: tuple[int, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
    backup_verify_interval: int = DAY
    registration: RegistrationMode = "open"
    metrics_token: str | None = None
    log_level: str = "INFO"
    # Edge regions (SPEC §7). One Machine is the primary, the only writer; an edge keeps a
    # read-only copy from the same replica and sends the rest to the primary.
    role: Role = "primary"
    # The primary's public origin (an edge proxies what it cannot answer there; on Fly it
    # may be unset, as the edge answers `fly-replay` instead) and its internal port's origin.
    primary_url: str | None = None
    primary_internal_url: str | None = None
    internal_port: int = 8001
    # The bearer between edges and the primary's internal port; unset: no internal port.
    edge_token: str | None = None
    # Fly's region names (FLY_REGION, PRIMARY_REGION), None elsewhere.
    fly_region: str | None = None
    primary_region: str | None = None
    # Wallet passes (SPEC §10, app/wallet): each kind is offered only when all its settings
    # are given; the files are checked to exist and parse at start (check_wallet).
    apple_pass_type_id: str | None = None
    apple_team_id: str | None = None
    apple_pass_cert: Path | None = None  # the Pass Type ID certificate, PEM
    apple_pass_key: Path | None = None  # its private key, PEM (encrypted with APPLE_PASS_KEY_PASSWORD, or not)
    apple_pass_key_password: str | None = None
    apple_wwdr_cert: Path | None = None  # Apple's WWDR intermediate (G4), PEM
    google_wallet_issuer_id: str | None = None
    google_wallet_service_account: Path | None = None  # the service account's JSON key file

    @property
    def apple_wallet(self) -> bool:
        """Apple Wallet passes are offered (GET /p/{slug}.pkpass answers)."""
        return self.apple_pass_type_id is not None

    @property
    def google_wallet(self) -> bool:
        """Google Wallet passes are offered (GET /p/{slug}/google-wallet answers)."""
        return self.google_wallet_issuer_id is not None

    @property
    def replication_enabled(self) -> bool:
        return self.replica_url != "off"

    @property
    def is_edge(self) -> bool:
        return self.role == "edge"

    @property
    def on_fly(self) -> bool:
        return self.fly_region is not None

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    # Litestream's clocks for the history, from backup_retention (litestream.yml reads
    # them through replication.environment). A point in time restores from the newest
    # snapshot before it plus the compacted files after that snapshot, and Litestream
    # drops a snapshot once it is older than its retention; kept one snapshot interval
    # longer than backup_retention, there is always a snapshot at least that old.

    @property
    def snapshot_interval(self) -> int:
        """Seconds between snapshots: a thirtieth of the history, at most a day."""
        return max(1, min(DAY, self.backup_retention // 30))

    @property
    def snapshot_retention(self) -> int:
        return self.backup_retention + self.snapshot_interval

    @property
    def l0_retention(self) -> int:
        """Seconds the per-sync files stay once compacted (Litestream's default 5 min, less for a short history)."""
        return max(1, min(300, self.snapshot_interval))

    def litestream_history(self) -> dict[str, str]:
        """The variables litestream.yml's history keys read, as Go durations."""
        return {
            "QRCONTACT_SNAPSHOT_INTERVAL": f"{self.snapshot_interval}s",
            "QRCONTACT_SNAPSHOT_RETENTION": f"{self.snapshot_retention}s",
            "QRCONTACT_L0_RETENTION": f"{self.l0_retention}s",
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from `env` (default: os.environ). Raises ConfigError."""
        env = os.environ if env is None else env
        data_dir = Path(env.get("DATA_DIR") or "./data").absolute()
        port = _int(env, "PORT", 8000, 1, 65535)
        default_base = f"http://localhost:{port}"
        role, primary_url, primary_internal_url, internal_port, edge_token = _regions(env)
        return cls(
            data_dir=data_dir,
            database_path=Path(env.get("DATABASE_PATH") or data_dir / "qrcontact.db").absolute(),
            jwt_secret=_jwt_secret(env, data_dir),
            host=_host(env.get("HOST") or "127.0.0.1"),
            port=port,
            public_base_url=_base_url(env.get("PUBLIC_BASE_URL") or default_base),
            jwt_expiry_minutes=_int(env, "JWT_EXPIRY_MINUTES", 15, 1, 24 * 60),
            refresh_expiry_days=_int(env, "REFRESH_EXPIRY_DAYS", 30, 1, 365),
            replica_url=_replica_url(env.get("REPLICA_URL") or f"file://{data_dir / 'replica'}"),
            smtp_url=_smtp_url(env.get("SMTP_URL") or None),
            mail_from=_mail_from(env.get("MAIL_FROM") or DEFAULT_MAIL_FROM),
            rate_limit_per_minute=_int(env, "RATE_LIMIT_PER_MINUTE", 50, 1, 1_000_000),
            scanner_rate_limit_per_minute=_int(env, "SCANNER_RATE_LIMIT_PER_MINUTE", 3000, 1, 1_000_000_000),
            leads_per_ip_hour=_int(env, "LEADS_PER_IP_HOUR", 10, 1, 1_000_000),
            leads_per_card_hour=_int(env, "LEADS_PER_CARD_HOUR", 200, 1, 1_000_000),
            trust_proxy_headers=_bool(env, "TRUST_PROXY_HEADERS"),
            trusted_proxies=_networks(env, "TRUSTED_PROXIES"),
            geoip_database_path=_readable_file(env, "GEOIP_DATABASE_PATH"),
            backup_retention=_duration(env, "BACKUP_RETENTION", 30 * DAY, low=60),
            events_retention=_duration(env, "EVENTS_RETENTION", 90 * DAY, low=60),
            backup_verify_interval=_duration(env, "BACKUP_VERIFY_INTERVAL", DAY, low=0),
            webhook_allow_private=_bool(env, "WEBHOOK_ALLOW_PRIVATE"),
            webhook_retry_schedule=_durations(env, "WEBHOOK_RETRY_SCHEDULE", (5, 300, 1800, 7200, 18000, 36000, 36000)),
            registration=_choice(env, "REGISTRATION", ("open", "invite", "closed"), "open"),
            metrics_token=env.get("METRICS_TOKEN") or None,
            log_level=_choice(env, "LOG_LEVEL", LOG_LEVELS, "INFO", upper=True),
            role=role,
            primary_url=primary_url,
            primary_internal_url=primary_internal_url,
            internal_port=internal_port,
            edge_token=edge_token,
            fly_region=env.get("FLY_REGION") or None,
            primary_region=env.get("PRIMARY_REGION") or None,
            **_wallet(env),
        )


def _regions(env: Mapping[str, str]) -> tuple[Role, str | None, str | None, int, str | None]:
    """The role and the edge settings. On Fly the role follows the regions: the Machine in
    PRIMARY_REGION is the primary; elsewhere ROLE says it (default primary)."""
    fly_region, primary_region = env.get("FLY_REGION") or None, env.get("PRIMARY_REGION") or None
    internal_port = _int(env, "INTERNAL_PORT", 8001, 1, 65535)
    if fly_region and primary_region:
        role: Role = "primary" if fly_region == primary_region else "edge"
        if env.get("ROLE") and env["ROLE"].lower() != role:
            raise ConfigError(f"ROLE={env['ROLE']} disagrees with FLY_REGION={fly_region} and PRIMARY_REGION={primary_region}")
    else:
        role = _choice(env, "ROLE", ("primary", "edge"), "primary")
    primary_url = _base_url(env["PRIMARY_URL"], "PRIMARY_URL") if env.get("PRIMARY_URL") else None
    primary_internal_url = _base_url(env["PRIMARY_INTERNAL_URL"], "PRIMARY_INTERNAL_URL") if env.get("PRIMARY_INTERNAL_URL") else None
    if primary_internal_url is None and fly_region and primary_region and env.get("FLY_APP_NAME"):
        primary_internal_url = f"http://{primary_region}.{env['FLY_APP_NAME']}.internal:{internal_port}"
    edge_token = env.get("EDGE_TOKEN") or None
    if edge_token is not None and len(edge_token) < 32:
        raise ConfigError("EDGE_TOKEN must be at least 32 characters")
    if role == "edge":
        if primary_url is None and not fly_region:
            raise ConfigError("ROLE=edge needs PRIMARY_URL, the primary's public origin")
        if primary_internal_url is None:
            raise ConfigError("ROLE=edge needs PRIMARY_INTERNAL_URL, the primary's internal port (or FLY_APP_NAME on Fly)")
        if edge_token is None:
            raise ConfigError("ROLE=edge needs EDGE_TOKEN, the same as the primary's")
        if (env.get("REPLICA_URL") or "") in ("", "off"):
            raise ConfigError("ROLE=edge needs REPLICA_URL, the primary's replica")
    return role, primary_url, primary_internal_url, internal_port, edge_token


APPLE_WALLET = ("APPLE_PASS_TYPE_ID", "APPLE_TEAM_ID", "APPLE_PASS_CERT", "APPLE_PASS_KEY", "APPLE_WWDR_CERT")
GOOGLE_WALLET = ("GOOGLE_WALLET_ISSUER_ID", "GOOGLE_WALLET_SERVICE_ACCOUNT")
PASS_TYPE_ID = re.compile(r"^pass\.[A-Za-z0-9.-]{1,200}$")
TEAM_ID = re.compile(r"^[A-Z0-9]{10}$")
ISSUER_ID = re.compile(r"^[0-9]{1,30}$")


def _wallet(env: Mapping[str, str]) -> dict:
    """The wallet settings: each kind all given or none (a half-configured kind would
    offer a button that fails), its files readable, then parsed by check_wallet."""
    values: dict = {}
    for names in (APPLE_WALLET, GOOGLE_WALLET):
        given = [name for name in names if (env.get(name) or "").strip()]
        if given and len(given) < len(names):
            missing = [name for name in names if name not in given]
            raise ConfigError(f"{given[0]} is set but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not: "
                              "set all of them or none")
    if (raw := (env.get("APPLE_PASS_TYPE_ID") or "").strip()):
        if not PASS_TYPE_ID.match(raw):
            raise ConfigError(f"APPLE_PASS_TYPE_ID must be a Pass Type ID like pass.com.example.contact, got {raw!r}")
        team = env["APPLE_TEAM_ID"].strip()
        if not TEAM_ID.match(team):
            raise ConfigError(f"APPLE_TEAM_ID must be the ten letters and digits of your Apple team, got {team!r}")
        values.update(
            apple_pass_type_id=raw, apple_team_id=team,
            apple_pass_cert=_readable_file(env, "APPLE_PASS_CERT"), apple_pass_key=_readable_file(env, "APPLE_PASS_KEY"),
            apple_pass_key_password=env.get("APPLE_PASS_KEY_PASSWORD") or None,
            apple_wwdr_cert=_readable_file(env, "APPLE_WWDR_CERT"),
        )
    if (raw := (env.get("GOOGLE_WALLET_ISSUER_ID") or "").strip()):
        if not ISSUER_ID.match(raw):
            raise ConfigError(f"GOOGLE_WALLET_ISSUER_ID must be the issuer's number from the Google Pay & Wallet Console, got {raw!r}")
        values.update(
            google_wallet_issuer_id=raw,
            google_wallet_service_account=_readable_file(env, "GOOGLE_WALLET_SERVICE_ACCOUNT"),
        )
    if not values:
        return values
    try:  # the wallet extra (pyproject.toml), needed only once a wallet is configured
        from app.wallet import keys
    except ImportError:
        raise ConfigError("wallet passes need the wallet extra: pip install 'qrcontact[wallet]'") from None
    try:  # parsed now, so a bad file stops the start naming its setting
        if "apple_pass_cert" in values:
            keys.read_apple_keys(
                values["apple_pass_cert"], values["apple_pass_key"], values["apple_pass_key_password"], values["apple_wwdr_cert"]
            )
        if "google_wallet_service_account" in values:
            keys.read_google_account(values["google_wallet_service_account"])
    except keys.Unusable as exc:
        raise ConfigError(str(exc)) from None
    return values


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "false").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _readable_file(env: Mapping[str, str], name: str) -> Path | None:
    """A path to a file that exists (checked at start, not at the first visit), or None when unset."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    path = Path(raw)
    if not path.is_file() or not os.access(path, os.R_OK):
        raise ConfigError(f"{name} must name a readable file, got {raw!r}")
    return path


def _duration(env: Mapping[str, str], name: str, default: int, low: int) -> int:
    """A duration such as 720h, 30d, 15m or 90s, in seconds (0 alone is allowed when low is 0)."""
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw == "0" and low == 0:
        return 0
    match = DURATION.match(raw)
    if not match:
        raise ConfigError(f"{name} must be a duration like 720h, 30d, 15m or 90s, got {raw!r}")
    seconds = int(match.group(1)) * SECONDS_PER_UNIT[match.group(2)]
    if seconds < max(low, 1):
        raise ConfigError(f"{name} must be at least {low} seconds, got {raw!r}")
    return seconds


def _durations(env: Mapping[str, str], name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    """A comma-separated list of durations (`5s,5m,30m`), in seconds; 1 to 20 of them."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    parts = [part.strip() for part in raw.split(",")]
    if not 1 <= len(parts) <= 20:
        raise ConfigError(f"{name} must list 1 to 20 durations, got {len(parts)}")
    return tuple(_duration({name: part}, name, 0, low=0) for part in parts)


def _networks(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated CIDRs (a bare address is its own /32 or /128), normalized."""
    networks = []
    for part in (env.get(name) or "").split(","):
        if part := part.strip():
            try:
                networks.append(str(ipaddress.ip_network(part, strict=False)))
            except ValueError:
                raise ConfigError(f"{name} must be comma-separated CIDRs like 10.0.0.0/8,::1/128, got {part!r}") from None
    return tuple(networks)


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str, upper: bool = False):
    raw = env.get(name) or default
    value = raw.upper() if upper else raw.lower()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return value


def _host(raw: str) -> str:
    try:
        ipaddress.ip_address(raw)
    except ValueError:
        if raw != "localhost":
            raise ConfigError(f"HOST must be an IP address such as 0.0.0.0 or 127.0.0.1, got {raw!r}") from None
    return raw


def _base_url(raw: str, name: str = "PUBLIC_BASE_URL") -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"{name} must be an http(s) URL like https://qr.example.com, got {raw!r}")
    return raw.rstrip("/")


def _replica_url(raw: str) -> str:
    if raw == "off":
        return raw
    parts = urlsplit(raw)
    if parts.scheme == "file" and parts.path:
        return raw
    if parts.scheme == "s3" and parts.netloc:
        return raw
    raise ConfigError(f"REPLICA_URL must be off, file:///path or s3://bucket/path, got {raw!r}")


def _smtp_url(raw: str | None) -> str | None:
    if raw is None:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigError(f"SMTP_URL must look like smtp://user:pass@host:587 or smtps://host:465, got {raw!r}")
    try:
        _ = parts.port  # urlsplit checks the port only when it is read
    except ValueError:
        raise ConfigError(f"SMTP_URL has a bad port: {raw!r}") from None
    return raw


def _mail_from(raw: str) -> str:
    # Parsed the way the mail module will use it: exactly one address, with a domain
    # (Message-IDs are made from it).
    try:
        addresses = () if any(ch in raw for ch in "\r\n\0") else HeaderRegistry()("From", raw).addresses
    except Exception:  # the email parser raises several kinds of error on odd input
        addresses = ()
    if len(addresses) != 1 or not addresses[0].username or not addresses[0].domain:
        raise ConfigError(f"MAIL_FROM must be an address like 'QR Contact <noreply@example.com>', got {raw!r}")
    return raw


def _jwt_secret(env: Mapping[str, str], data_dir: Path) -> str:
    """The JWT_SECRET given, or one generated on first start and kept in the data folder."""
    given = env.get("JWT_SECRET")
    if given:
        if len(given) < 32:
            raise ConfigError("JWT_SECRET must be at least 32 characters")
        return given
    path = data_dir / "jwt_secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    # Written whole under a temporary name, then linked into place: two processes
    # starting at once agree on one secret, and no one ever reads a half-written file.
    tmp = path.with_name(f".jwt_secret.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        secret = path.read_text().strip()
    finally:
        tmp.unlink()
    return secret


# How handlers ask for the app's settings (injected by name, see main.build_app).
SettingsDep = NamedDependency[Settings]
