"""One `litestream restore -f` process following the replica into a copy file, and the
file locks that let the edge stop it between two updates and read the copy meanwhile.

The follower writes the copy under SQLite's exclusive lock. It is stopped (SIGSTOP) only
when it is not holding that lock, or it would lock every reader out until resumed; and
the copy is switched to the rollback journal before anyone reads it (see
app/edge/local_copy.py for why).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import signal
import struct
import time
from dataclasses import dataclass
from pathlib import Path

# SQLite's lock bytes (os_unix.c): the follower takes these as a writer would.
PENDING_BYTE = 0x40000000
SHARED_FIRST = PENDING_BYTE + 2
SHARED_SIZE = 510
# struct flock on Linux: l_type, l_whence, l_start, l_len, l_pid (native alignment).
FLOCK = "@hhqqi4x"



def use_rollback_journal(fd: int) -> None:
    """Mark the copy as a rollback-journal database (header bytes 18-19), under the lock
    the follower writes under. In WAL mode every reader would keep a shared lock and a
    `-shm` file, and the follower's exclusive lock could wait on them for good."""
    fcntl.lockf(fd, fcntl.LOCK_EX, 1, PENDING_BYTE)
    fcntl.lockf(fd, fcntl.LOCK_EX, SHARED_SIZE, SHARED_FIRST)
    try:
        if os.pread(fd, 2, 18) == b"\x02\x02":
            os.pwrite(fd, b"\x01\x01", 18)
            os.fsync(fd)
    finally:
        # Unlocked byte range by byte range: closing the descriptor would also drop the
        # locks of every SQLite connection this process has on the file.
        fcntl.lockf(fd, fcntl.LOCK_UN, SHARED_SIZE, SHARED_FIRST)
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, PENDING_BYTE)


def writer_holds_lock(fd: int) -> bool:
    """Whether another process (the follower) holds the copy's write lock: asked with
    F_GETLK, which changes no lock (unlocking a range would drop SQLite's too)."""
    query = struct.pack(FLOCK, fcntl.F_RDLCK, os.SEEK_SET, PENDING_BYTE, SHARED_SIZE + 2, 0)
    answer = fcntl.fcntl(fd, fcntl.F_GETLK, query)
    return struct.unpack(FLOCK, answer)[0] != fcntl.F_UNLCK


def process_stopped(pid: int) -> bool:
    """Whether the process is stopped (its state in /proc is T)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # gone: nothing of it runs
    return stat.rpartition(")")[2].split()[0] in ("T", "t")


def die_with_parent() -> None:
    """Run in the follower before it starts: Linux kills it when the app's process dies, even
    by `kill -9`, so that no orphan follows (and pays for) a copy nobody reads."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


PR_SET_PDEATHSIG = 1


@dataclass
class Follower:
    """One `litestream restore -f` and the copy it keeps."""

    process: asyncio.subprocess.Process
    path: Path
    fd: int = -1
    paused: bool = False

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    async def pause(self) -> bool:
        """Stop the follower between two updates; False when it was caught mid-update (it
        is let go on, and asked again next time)."""
        if self.paused or not self.alive:
            return self.paused
        self.process.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 1.0
        while not process_stopped(self.process.pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        if not process_stopped(self.process.pid) or writer_holds_lock(self.fd):
            # Stopped holding its lock, it would lock every reader out until resumed.
            self.process.send_signal(signal.SIGCONT)
            return False
        self.paused = True
        return True

    def resume(self) -> None:
        if self.paused and self.alive:
            self.process.send_signal(signal.SIGCONT)
        self.paused = False

    async def stop(self) -> None:
        if self.alive:
            self.process.kill()  # a stopped process takes SIGKILL too
        await self.process.wait()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


async def discard(follower: Follower) -> None:
    """Stop a follower and delete its copy (and the copy's -txid, -journal files)."""
    await follower.stop()
    for leftover in follower.path.parent.glob(f"{follower.path.name}*"):
        leftover.unlink(missing_ok=True)
