"""An edge's read-only copy of the primary's database, and what it knows to be out of date.

The copy (SPEC §7): `litestream restore -f` restores the latest copy from the replica into
a fresh file and then follows it, applying the primary's new LTX files as they arrive.
What Litestream 0.5.17 does and does not do here decides the shape of this module:

* Following is paid per request to the object store, and it never stops on its own: an
  idle primary costs a follower 8.5 LIST/s (an empty tick lists every level), a busy one
  1 LIST + 1 GET per second, although the busy primary's writes are nearly all scan
  counters that an edge never serves. So the follower runs only while the copy is behind
  the *card change sequence* (app/edge/card_changes.py), which the edge reads from the
  primary over the private network (free); the rest of the time it is stopped (SIGSTOP)
  and costs nothing. Resumed, it lists from where it was and bridges compacted levels.
* A slug that changed after the copy's own newest change is not answered from the copy:
  `EdgeCards` raises `AskPrimary` and the request goes to the primary. Changes and
  deletions are therefore right at the edge as soon as the edge hears of them (one long
  poll, well under a second), however far behind the copy is; the copy's freshness only
  decides how long such a slug's requests go to the primary.
* The follower writes the file under SQLite's exclusive lock; a connection kept open on a
  copy still in WAL mode blocks it for good, and one kept open across updates reads stale
  pages. So nothing here keeps a connection: each lookup opens a read-only one (~90 µs,
  behind the in-memory cache), and the copy is switched to the rollback journal before
  anyone reads it (Litestream does that itself, but only when an update touches page 1).
* A follower cannot resume on an existing copy after a restart ("saved TXID … is ahead of
  latest snapshot"): every start, and every restart by the watchdog (the copy more than
  WATCHDOG_LAG seconds behind the change sequence, or the follower gone), restores a new
  copy in full beside the old one, which is served until the new one is ready.
* The primary's change sequence belongs to a history (app/edge/card_changes.py): a restore of
  the primary begins a new one, in which the same seqs may name other changes. An answer
  that names another history than the copy's (or a newest change below one heard) means
  that the copy and what was heard may hold what the primary no longer has: the edge
  forgets both, sends every lookup to the primary, and restores fresh copies until one
  belongs to the primary's history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
from prometheus_client import Counter, Gauge

from app.brand import store as brand_store
from app.cards.cards import shows_team_logo
from app.cards.store import CARD_COLUMNS, card_from_row
from app.cards.types import Card, ImageKind
from app.config import Settings
from app.edge.follower import Follower, die_with_parent, discard, use_rollback_journal
from app.ops.replication import CONFIG, ReplicationError, binary, environment
from app.public.card_cache import Gone, PublicCards, wearing
from app.sqlite import sqlite3

log = logging.getLogger("app.edge")

EDGE_LAG = Gauge(
    "edge_replica_lag_seconds",
    "How far the edge's copy is behind the primary's card changes (0 when it holds them all)",
)
FOLLOWER_RESTARTS = Counter("edge_follower_restarts", "Times the edge restored a fresh copy and followed it anew", ["reason"])

# Restart following when the copy is this far behind the newest card change (SPEC §7).
WATCHDOG_LAG = 60.0
# How often the follower polls the replica while it runs, and how often the edge looks at
# its copy meanwhile.
FOLLOW_INTERVAL = "500ms"
LOOK_EVERY = 0.25
# How long the edge waits on one long poll of the primary's change sequence.
LONG_POLL = 20.0
# How long a lookup waits for the follower's lock on the copy (it writes for milliseconds).
READ_TIMEOUT = 5.0
# How often a copy of another history than the primary's is restored anew (the replica
# has the primary's new history once the restarted primary's Litestream has synced).
RESTORE_AGAIN = 5.0

class AskPrimary(Exception):
    """The edge cannot answer for this slug from its copy: the primary must."""


# --- the copy ------------------------------------------------------------------------


def read_card(path: Path, slug: str) -> Card | Gone | None:
    """The card under `slug` in the copy at `path` ("gone" if retired, None if unknown), on a
    connection opened for this lookup only. Raises sqlite3.Error."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=READ_TIMEOUT, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        row = conn.execute(f"SELECT {CARD_COLUMNS} FROM cards WHERE slug = ?", (slug,)).fetchone()
        if row is not None:
            return wearing(card_from_row(row), brand_store.read_stored(conn))
        retired = conn.execute("SELECT 1 FROM retired_slugs WHERE slug = ?", (slug,)).fetchone()
        return "gone" if retired else None
    finally:
        conn.close()


def read_image(path: Path, card_row_id: int, kind: ImageKind, thumbnail: bool, team: bool = False) -> tuple[str, bytes] | None:
    """The (hash, JPEG) of a card's image or thumbnail in the copy at `path` (`team`: the team
    logo the card shows), None when it has none, on a connection opened for this lookup
    only. Raises sqlite3.Error."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=READ_TIMEOUT, isolation_level=None)
    try:
        if team:
            return brand_store.read_logo(conn, thumbnail)
        column = "thumbnail" if thumbnail else "image"
        row = conn.execute(
            f"SELECT content_hash, {column} FROM card_images WHERE card_id = ? AND kind = ?", (card_row_id, kind)
        ).fetchone()
        return None if row is None else (row[0], bytes(row[1]))
    finally:
        conn.close()


def copy_position(path: Path) -> int:
    """The newest card change the copy holds. Raises sqlite3.Error."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=READ_TIMEOUT, isolation_level=None)
    try:
        return int(conn.execute("SELECT coalesce(max(seq), 0) FROM card_changes").fetchone()[0])
    finally:
        conn.close()


def copy_history(path: Path) -> str | None:
    """The history the copy belongs to (None before migration 0008). Raises sqlite3.Error."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=READ_TIMEOUT, isolation_level=None)
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'history'").fetchone():
            return None
        row = conn.execute("SELECT id FROM history").fetchone()
        return None if row is None else row[0]
    finally:
        conn.close()


# --- what the edge knows to be newer than its copy -------------------------------------


@dataclass
class Changes:
    """The primary's card changes the copy does not hold yet, from its change sequence."""

    heard: int = 0  # the newest seq heard of from the primary
    history: str | None = None  # the primary's history those seqs belong to
    pending: dict[str, tuple[int, float]] = field(default_factory=dict)  # slug -> (seq, changed at, epoch)

    def hear(self, changes: list[dict], latest: int) -> list[str]:
        """Take an answer of GET /internal/changes; returns the slugs it names."""
        slugs = []
        for change in changes:
            seq, slug = int(change["seq"]), change["slug"]
            self.pending[slug] = (seq, _epoch(change["changedAt"]))
            self.heard = max(self.heard, seq)
            slugs.append(slug)
        if not changes:
            self.heard = max(self.heard, latest)
        return slugs

    def held_up_to(self, position: int) -> list[str]:
        """The copy now holds every change up to `position`: returns the slugs no longer pending."""
        caught = [slug for slug, (seq, _) in self.pending.items() if seq <= position]
        for slug in caught:
            del self.pending[slug]
        return caught

    def lag(self, now: float) -> float:
        """Seconds since the oldest change the copy does not hold was made (0 with none)."""
        oldest = min((at for _, at in self.pending.values()), default=None)
        return 0.0 if oldest is None else max(0.0, now - oldest)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


# --- the edge's card directory ---------------------------------------------------------


class EdgeCards(PublicCards):
    """The public pages' cards at an edge: the cache of app.public.card_cache (its hits and
    misses, its LRU, forget), whose `load` reads the copy instead of the database.

    Only cards and retired slugs are cached (a retired slug stays retired). A slug the copy
    does not have, or that changed after it, raises AskPrimary: an edge never answers 404
    for a card the primary may have. (A slug without a card's shape is None, unread, as at
    the primary.) A slug heard of as changed while the copy was read is not cached: hearing
    a change calls `forget`, which is what keeps any lookup under way from storing its read.
    """

    def __init__(self, copy: EdgeCopy, size: int = 10_000) -> None:
        super().__init__(db=None, size=size)  # type: ignore[arg-type]  # reads the copy, not a Database
        self._copy = copy

    async def load(self, slug: str) -> Card | Gone:
        """The card or "gone" from the copy. Raises AskPrimary."""
        path = self._copy.path
        if path is None or self._copy.outdated_since is not None or slug in self._copy.changes.pending:
            raise AskPrimary(slug)
        try:
            found = await asyncio.to_thread(read_card, path, slug)
        except sqlite3.Error as exc:
            # The copy replaced meanwhile (its old file removed), or locked for longer than
            # an update takes: the primary can answer.
            log.warning("reading the copy for %r failed (%s); asking the primary", slug, exc)
            raise AskPrimary(slug) from exc
        if found is None:
            raise AskPrimary(slug)
        return found

    async def load_image(self, card: Card, kind: ImageKind, thumbnail: bool) -> tuple[str, bytes]:
        """The card's image from the copy, which holds it whenever it holds the card's row
        (one transaction wrote both). Raises AskPrimary when the copy cannot say."""
        path = self._copy.path
        if path is None or self._copy.outdated_since is not None or card.slug in self._copy.changes.pending:
            raise AskPrimary(card.slug)
        try:
            team = kind == "logo" and shows_team_logo(card)
            found = await asyncio.to_thread(read_image, path, card.id, kind, thumbnail, team)
        except sqlite3.Error as exc:
            log.warning("reading the copy's image for %r failed (%s); asking the primary", card.slug, exc)
            raise AskPrimary(card.slug) from exc
        if found is None:
            raise AskPrimary(card.slug)
        return found


# --- keeping it -------------------------------------------------------------------------


class EdgeCopy:
    """Restores the copy, follows the replica while the copy is behind the primary's card
    changes, hears those changes, and restarts following when it stalls."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.folder = settings.data_dir / "copy"
        self.path: Path | None = None  # the copy lookups read; None until the first is restored
        self.changes = Changes()
        self.cards = EdgeCards(self)
        self.follower: Follower | None = None
        self.generation = 0
        self.position = 0  # the newest card change in the copy
        self.restored_at = 0.0  # monotonic time of the newest copy's restore
        self.heard_once = asyncio.Event()
        self.history: str | None = None  # the history the copy belongs to
        # Set when the primary named another history than the copy's (wall time), until a
        # copy of `wanted_history` is ready; meanwhile nothing is answered from the copy.
        self.outdated_since: float | None = None
        self.wanted_history: str | None = None
        self.copy_belongs = asyncio.Event()
        self.copy_belongs.set()
        EDGE_LAG.set_function(self.lag)

    @property
    def ready(self) -> bool:
        return self.path is not None

    def lag(self) -> float:
        if not self.ready:
            return float("nan")
        now = time.time()
        outdated = 0.0 if self.outdated_since is None else now - self.outdated_since
        return max(self.changes.lag(now), outdated)

    # --- the follower ---

    async def start_follower(self) -> Follower:
        """Restore a new copy and start following it. Raises ReplicationError."""
        self.generation += 1
        path = self.folder / f"copy-{self.generation}.db"
        command = [
            binary(), "restore", "-config", str(CONFIG), "-f", "-follow-interval", FOLLOW_INTERVAL,
            "-o", str(path), str(self.settings.database_path),
        ]
        process = await asyncio.create_subprocess_exec(
            *command, env=environment(self.settings), stdin=subprocess.DEVNULL, preexec_fn=die_with_parent
        )
        follower = Follower(process, path)
        # Litestream restores into a temporary file and renames it into place when whole.
        while not path.exists():
            if not follower.alive:
                raise ReplicationError(f"litestream restore -f exited with status {process.returncode}")
            await asyncio.sleep(0.05)
        follower.fd = os.open(path, os.O_RDWR)
        await asyncio.to_thread(use_rollback_journal, follower.fd)
        return follower

    async def replace_follower(self, reason: str) -> None:
        """Restore a fresh copy beside the one served, then switch to it."""
        FOLLOWER_RESTARTS.labels(reason).inc()
        while True:
            follower = None
            try:
                follower = await self.start_follower()
                # A primary without migration 0005 has no change sequence: no copy to serve.
                position = await asyncio.to_thread(copy_position, follower.path)
                history = await asyncio.to_thread(copy_history, follower.path)
                break
            except (ReplicationError, sqlite3.Error, OSError) as exc:
                log.warning("no copy yet (%s); trying again", exc)
                if follower is not None:
                    await discard(follower)
                await asyncio.sleep(2.0)
        self.restored_at = time.monotonic()
        old, self.follower = self.follower, follower
        self.path, self.position, self.history = follower.path, position, history
        self.take_position(position)
        log.info("edge copy %s ready at card change %d of history %s", follower.path.name, position, history)
        if self.outdated_since is not None and history == self.wanted_history:
            self.outdated_since = None
            self.copy_belongs.set()
        if old is not None:
            await discard(old)

    def take_position(self, position: int) -> None:
        self.position = position
        if caught := self.changes.held_up_to(position):
            # Read from the copy from now on; a lookup under way reads it again.
            self.cards.forget(*caught)

    async def keep(self) -> None:
        """Restore, then follow only while behind, until cancelled (the watchdog inside)."""
        shutil.rmtree(self.folder, ignore_errors=True)  # an old copy cannot be followed again
        self.folder.mkdir(parents=True, exist_ok=True)
        await self.replace_follower("start")
        while True:
            await asyncio.sleep(LOOK_EVERY)
            follower = self.follower
            assert follower is not None
            if not follower.alive:
                log.warning("the follower exited (status %s); restoring a fresh copy", follower.process.returncode)
                await self.replace_follower("exited")
                continue
            if self.outdated_since is not None:
                if time.monotonic() - self.restored_at > RESTORE_AGAIN:
                    await self.replace_follower("history")
                continue
            try:
                self.take_position(await asyncio.to_thread(copy_position, follower.path))
            except sqlite3.Error as exc:
                log.warning("reading the copy failed: %s", exc)
            if self.changes.pending or not self.heard_once.is_set():
                follower.resume()
            else:
                await follower.pause()
            # Once per WATCHDOG_LAG at most: a replica that lacks the change (the primary's
            # Litestream stuck) would otherwise have the edge restore in a loop.
            if self.lag() > WATCHDOG_LAG and time.monotonic() - self.restored_at > WATCHDOG_LAG:
                log.warning("the copy is %.0f s behind the primary; restoring a fresh copy", self.lag())
                await self.replace_follower("behind")

    # --- the primary's change sequence ---

    async def hear_changes(self) -> None:
        """Long-poll the primary's card changes after the newest one heard of, until cancelled."""
        headers = {"Authorization": f"Bearer {self.settings.edge_token}"}
        base = self.settings.primary_internal_url
        async with httpx.AsyncClient(base_url=base or "", headers=headers, timeout=LONG_POLL + 10) as client:
            while not self.ready:
                await asyncio.sleep(0.05)
            self.changes.heard = max(self.changes.heard, self.position)
            self.changes.history = self.history
            while True:
                try:
                    # The first answer at once: until it comes, the edge cannot tell whether its copy is behind.
                    wait = LONG_POLL if self.heard_once.is_set() else 0
                    params = {"after": self.changes.heard, "wait": wait}
                    if self.history is not None:
                        params["history"] = self.history  # another one at the primary: answered at once
                    response = await client.get("/internal/changes", params=params)
                    response.raise_for_status()
                    answer = response.json()
                except (httpx.HTTPError, ValueError) as exc:
                    log.warning("asking the primary for card changes failed: %s", exc)
                    await asyncio.sleep(1.0)
                    continue
                if self.another_history(answer.get("history"), answer["latest"]):
                    await self.start_over(answer.get("history"), answer["latest"])
                    continue
                if slugs := self.changes.hear(answer["changes"], answer["latest"]):
                    self.cards.forget(*slugs)
                    self.take_position(self.position)  # changes the copy already holds
                self.heard_once.set()

    def another_history(self, history: str | None, latest: int) -> bool:
        """Whether the primary's answer belongs to another history than the copy or what was
        heard: its id, or a newest change below one already heard (the seqs never go down
        within one history)."""
        return history != self.history or history != self.changes.history or latest < self.changes.heard

    async def start_over(self, history: str | None, latest: int) -> None:
        """Forget what was heard and cached, answer nothing from the copy, and wait until a
        fresh copy of the primary's `history` is ready (restored by `keep`); after LONG_POLL
        seconds without one, return to ask the primary again (it may be another by then)."""
        if history == self.history and self.position <= latest and self.outdated_since is None:
            # The copy is of that history already (the watchdog restored it meanwhile):
            # only what was heard belongs to the old one.
            self.changes = Changes(heard=self.position, history=history)
            self.cards.forget_all()
            return
        if self.outdated_since is None:
            log.warning("the primary's change history (%s) is not the copy's (%s), or went back: the primary "
                        "was restored; sending every request to it until a fresh copy is ready", history, self.history)
            self.outdated_since = time.time()
        self.wanted_history = history
        self.copy_belongs.clear()
        self.changes = Changes(history=history)
        self.cards.forget_all()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.copy_belongs.wait(), LONG_POLL)
            self.changes.heard = self.position

    async def stop(self) -> None:
        if self.follower is not None:
            await self.follower.stop()


@contextlib.asynccontextmanager
async def running(copy: EdgeCopy):
    """Keep the copy and hear the changes while the app runs."""
    tasks = [asyncio.create_task(copy.keep()), asyncio.create_task(copy.hear_changes())]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await copy.stop()
