"""Which SQLite the app links: the `pysqlite3` wheel's where it installs, else Python's own.

The wheel bundles SQLite 3.53, past the WAL-reset fix of 3.51.3 (docs/operations.md, "SQLite
versions"), which Python's `sqlite3` module lacks wherever the system library is older
(Debian 12 has 3.40). Every module of the app imports `sqlite3` from here, so the
connections, rows and exception classes all come from one library; `qrcontact serve`
warns at start when the fallback is older than the fix.

Nothing in the app's process may open the database through another SQLite library: its
POSIX locks are per process, so closing a connection of one library drops the locks the
other holds (sqlite.org, "How To Corrupt An SQLite Database File", 2.2.1), and a library
does not see the other's writes reliably. The tests import `sqlite3` from here too.
"""

try:
    import pysqlite3.dbapi2 as sqlite3
except ImportError:  # a platform with no pysqlite3 wheel
    import sqlite3

FIXED_VERSION = (3, 51, 3)

__all__ = ["FIXED_VERSION", "sqlite3"]
