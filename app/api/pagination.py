"""One way to page through a list, for every list the API has (cards, invitations).

Lists run newest first by row id; a page's `nextCursor` is the id of its last item, and
the next page holds the rows below it. The query parameters are these two types, the
cursor is read by `before`, and a page is cut by `page_of`, so no list can drift from
the others: a bad cursor or limit is a 422 problem everywhere, never a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from litestar.params import QueryParameter

DEFAULT_LIMIT = 20
Limit = Annotated[int, QueryParameter(ge=1, le=100, description="items per page")]
# 18 digits at most: 19 can pass SQLite's 64-bit integers (and Python would not mind).
Cursor = Annotated[str | None, QueryParameter(pattern=r"^[0-9]{1,18}$", description="nextCursor of the previous page")]

Row = TypeVar("Row")


def before(cursor: str | None) -> int:
    """The row id a page starts below: the cursor's, or past every id for the first page."""
    return int(cursor) if cursor else 2**63 - 1


def page_of(rows: list[Row], limit: int, row_id: Callable[[Row], int]) -> tuple[list[Row], str | None]:
    """The page in `rows` (fetched with `limit` + 1 rows to tell whether more follow) and
    the cursor of the next page, None on the last one."""
    page = rows[:limit]
    return page, str(row_id(page[-1])) if len(rows) > limit else None
