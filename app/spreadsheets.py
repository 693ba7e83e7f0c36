"""CSV cells a spreadsheet opens safely: the one neutraliser every CSV export uses (the
stats and leads downloads), so a value someone else typed (a card's name, a lead's note,
a cell of an imported file, a referrer) is shown as text, never run as a formula.
"""

from __future__ import annotations

from typing import Any

# Spreadsheets run a cell starting with one of these as a formula (OWASP "CSV injection"):
# `=cmd|' /C calc'!A0`, `+`, `-` and `@` as much as `=`; a tab or line break before them too.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def csv_cell(value: Any) -> Any:
    """A value that a spreadsheet shows as text: formula-like strings get a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
