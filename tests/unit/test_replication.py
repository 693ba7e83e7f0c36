"""What the app never does to a replicated database: no in-place VACUUM (replication with
the real `litestream` is tests/live/test_replication.py).
"""

from __future__ import annotations

import re

from tests.support import ROOT


def test_no_in_place_vacuum():
    """Litestream's guidance: VACUUM rewrites the whole file under it; use VACUUM INTO a copy."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in [*(ROOT / "app").rglob("*.py"), *(ROOT / "migrations").glob("*.sql")]
        if re.search(r"\bVACUUM\b(?!\s+INTO)", path.read_text(), re.I)
    ]
    assert offenders == []
