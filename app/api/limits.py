"""What the service refuses before doing any work: who a client is for the rate limits,
login throttling per account, and request bodies that are not plain JSON.

The per-client limit on /v1 and on the console's forms is Litestar's RateLimitMiddleware
(`rate_limit`, used by main.build_app and console.router); this module gives it the
client's identity. Login throttling needs state across requests (failures per account),
so it lives in a Litestar store; the counts are in memory and start afresh when the
service restarts.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import ipaddress
import json
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from litestar import Request
from litestar.exceptions import ClientException, HTTPException, TooManyRequestsException
from litestar.middleware.rate_limit import RateLimitConfig, RateLimitMiddleware
from litestar.stores.base import Store
from litestar.stores.memory import MemoryStore

from app.errors import Limited
from app.proxies import client_of

if TYPE_CHECKING:
    from litestar.types import Receive, Scope, Send


# --- who the client is ---------------------------------------------------------------


def network_of(address: str) -> str:
    """The unit a limit counts: an IPv4 address, or an IPv6 /64 (one subscriber's block,
    which a single client can rotate through freely)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def client_ip(request: Request) -> str:
    """The client address rate limits use (app/proxies.py): the socket peer, or what a
    trusted proxy says (TRUSTED_PROXIES, or Fly-Client-IP with TRUST_PROXY_HEADERS, of
    the app's settings).

    uvicorn runs with proxy_headers off, so the socket peer is the real peer.
    """
    headers = request.headers
    client = client_of(
        request.app.state.settings, request.client.host if request.client else None, headers.get("fly-client-ip"),
        headers.getall("x-forwarded-for", ()), headers.getall("forwarded", ()),
    )
    return network_of(client) if client else "unknown"


def rate_limit(counts: Callable[[Request], bool] | None = None) -> RateLimitConfig:
    """RATE_LIMIT_PER_MINUTE requests per client, for the requests `counts` says (all by default).

    Every config made here counts into one bucket per client: Litestar keys a client's
    history by the middleware class and the client, and both are the same, so /v1 and
    the console share it and an attacker cannot spend the limit twice. The limit is the
    app's setting, read at each request (RateLimitHeaders).
    """
    return RateLimitConfig(
        rate_limit=("minute", LIMIT_FROM_STATE),
        identifier_for_request=client_ip,
        middleware_class=RateLimitHeaders,
        check_throttle_handler=counts,
    )


# RateLimitConfig's own number is never used: RateLimitHeaders takes the app's setting.
LIMIT_FROM_STATE = 0


class RateLimitHeaders(RateLimitMiddleware):
    """Litestar's rate limit, with its headers on error answers too, and `Retry-After` on its 429.

    Litestar adds the RateLimit headers through `send`; an error raised further in (a
    401 from authentication) is answered further out and never passes through it, so
    the requests that count against the limit most often did not show it. Litestar's
    429 carries only the draft headers; clients, proxies and browsers look for
    Retry-After. And one lock for the app's every instance (`shared_lock`).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = scope["litestar_app"]
        # The app's RATE_LIMIT_PER_MINUTE: one value for every request of one app.
        self.max_requests = app.state.settings.rate_limit_per_minute
        request: Request = app.request_class(scope)
        if not await self.should_check_request(request=request):
            await self.app(scope, receive, send)
            return
        store = self.config.get_store_from_app(app)
        key = self.cache_key_from_request(request)
        async with shared_lock(app):
            cache_object = await self.retrieve_cached_history(key, store)
            if len(cache_object.history) >= self.max_requests:
                headers = self.create_response_headers(cache_object=cache_object)
                # At least 1: a zero would tell a client to retry at once, into the same window.
                headers["Retry-After"] = str(max(1, int(headers["RateLimit-Reset"])))
                raise TooManyRequestsException(headers=headers)
            await self.set_cached_history(key=key, cache_object=cache_object, store=store)
        try:
            await self.app(scope, receive, self.create_send_wrapper(send=send, cache_object=cache_object))
        except HTTPException as exc:
            exc.headers = {**self.create_response_headers(cache_object=cache_object), **(exc.headers or {})}
            raise


def shared_lock(app: Any) -> asyncio.Lock:
    """The lock around reading and writing a client's history, one for the whole app.

    Litestar makes a middleware instance, with a lock of its own, per route; requests to
    two routes at once (a console form and an API call) would both read the client's
    history before either wrote it back, and one would not count: 40 requests at once
    over 5 routes got through a limit of 10 about 19 times.
    """
    if "rate_limit_lock" not in app.state:
        app.state["rate_limit_lock"] = asyncio.Lock()
    return app.state["rate_limit_lock"]


# --- login throttling ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """Growing delays after failed logins; see docs/limits.md."""

    # Failures of one account from one client network before any delay.
    free_per_client: int = 5
    # After that each failure doubles the wait (1 s, 2 s, 4 s, ...) up to this.
    max_delay_per_client: int = 15 * 60
    # Failures of one account from everywhere before a delay applies to new networks
    # too (a guesser spread over many addresses), and the cap of that delay.
    free_per_account: int = 50
    max_delay_per_account: int = 60
    # Failures are forgotten this long after the last one.
    forget_after: int = 24 * 3600
    # A network that logged in to an account is spared the account-wide delay this long,
    # so strangers' failures cannot keep the owner out.
    known_for: int = 30 * 24 * 3600
    # Failure records kept at most (one per account, one per account and network): past
    # this the record updated longest ago is forgotten first. About 0.36 KiB each with the
    # store's entry (measured with tracemalloc), so about 40 MiB at most (docs/limits.md).
    max_records: int = 100_000


@dataclasses.dataclass(slots=True)
class Failures:
    count: int = 0
    last: float = 0.0


class LoginThrottle:
    """Failed logins per account (and per account and client network), kept in a Litestar store.

    An attempt is counted as a failure before the password is checked and taken back
    when it succeeds, so parallel guesses cannot slip past the count. While a delay
    runs, attempts are refused with 429 and `Retry-After` without hashing anything.
    """

    def __init__(self, store: Store, policy: ThrottlePolicy | None = None, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.policy = policy or ThrottlePolicy()
        self.clock = clock
        self._lock = asyncio.Lock()
        # The failure records written, least recently updated first: what to forget at the cap.
        self._records: collections.OrderedDict[str, None] = collections.OrderedDict()

    async def begin(self, email: str, client: str) -> None:
        """Count an attempt. Raises Limited while the account's delay runs (a domain error, so
        the console can answer it with a page and the API with 429 and Retry-After)."""
        policy = self.policy
        account, pair = _keys(email, client)
        async with self._lock:
            now = self.clock()
            mine, everyone = await self._get(pair), await self._get(account)
            wait = _wait(mine, policy.free_per_client, policy.max_delay_per_client, now)
            if not await self.store.exists(_known_key(email, client)):
                wait = max(wait, _wait(everyone, policy.free_per_account, policy.max_delay_per_account, now))
            if wait > 0:
                raise Limited(
                    "too many failed logins for this account; wait before trying again", retry_after=math.ceil(wait)
                )
            await self._put(pair, Failures(mine.count + 1, now))
            await self._put(account, Failures(everyone.count + 1, now))

    async def succeeded(self, email: str, client: str) -> None:
        """The password was right: clear this network's failures, take back the attempt counted."""
        account, pair = _keys(email, client)
        async with self._lock:
            await self.store.delete(pair)
            self._records.pop(pair, None)
            everyone = await self._get(account)
            if everyone.count > 1:
                await self._put(account, Failures(everyone.count - 1, everyone.last))
            else:
                await self.store.delete(account)
                self._records.pop(account, None)
            await self.store.set(_known_key(email, client), b"1", expires_in=self.policy.known_for)

    async def _get(self, key: str) -> Failures:
        raw = await self.store.get(key)
        return Failures(**json.loads(raw)) if raw else Failures()

    async def _put(self, key: str, failures: Failures) -> None:
        value = json.dumps(dataclasses.asdict(failures))
        await self.store.set(key, value, expires_in=self.policy.forget_after)
        self._records[key] = None
        self._records.move_to_end(key)
        while len(self._records) > self.policy.max_records:
            oldest, _ = self._records.popitem(last=False)
            await self.store.delete(oldest)

    def __len__(self) -> int:
        """Failure records kept (some may have expired in the store already)."""
        return len(self._records)


def _keys(email: str, client: str) -> tuple[str, str]:
    account = "account:" + email.lower()
    return account, f"{account}|client:{client}"


def _known_key(email: str, client: str) -> str:
    return f"known:{email.lower()}|client:{client}"


def _wait(failures: Failures, free: int, cap: int, now: float) -> float:
    """Seconds until the next attempt may run: 0 while under `free`, then 1, 2, 4 ... up to `cap`."""
    if failures.count < free:
        return 0.0
    delay = min(2 ** min(failures.count - free, 30), cap)
    return max(0.0, failures.last + delay - now)


async def sweep(stores: list[Store], interval: float = 60.0) -> None:
    """Drop expired entries from in-memory stores until cancelled.

    A MemoryStore only forgets an expired key when it is read again; without this,
    every address and email ever seen would stay in memory.
    """
    while True:
        await asyncio.sleep(interval)
        for store in stores:
            if isinstance(store, MemoryStore):
                await store.delete_expired()


# --- request bodies ------------------------------------------------------------------


def _is_json(media_type: str) -> bool:
    main, _, sub = media_type.lower().partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


class JsonRequest(Request):
    """Litestar's Request, stricter about JSON bodies.

    * A body must say it is JSON (415 otherwise): a browser can send text/plain or a
      form to any origin without asking first, and such a body must never be acted on.
    * Bodies msgspec cannot decode for reasons Litestar does not catch (invalid UTF-8,
      nesting deeper than the decoder's recursion limit) are a 400, not a server error.
    """

    async def json(self) -> Any:
        body = await self.body()  # enforces request_max_body_size (413) first
        if body and not _is_json(self.content_type[0]):
            raise ClientException(status_code=415, detail="send the body as JSON, with Content-Type: application/json")
        try:
            return await super().json()
        except UnicodeDecodeError:
            raise ClientException(status_code=400, detail="JSON is malformed: it is not valid UTF-8") from None
        except RecursionError:
            raise ClientException(status_code=400, detail="JSON is malformed: it is nested too deeply") from None
