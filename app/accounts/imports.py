"""The team admin's bulk import (SPEC §10): a CSV of people in, each person's card created
and the ones without an account invited; `POST /v1/admin/import` and the console's
Team › Import page call `import_people`.

Each row's outcome, decided by `_outcome` against what is stored (a dry run decides the
same way and writes nothing):
* `created`: the address has an account, which gets a card (owned by it);
* `invited`: no account: a card is created, owned by the importing admin until its person
  registers through the team invitation emailed now (`claim_cards` hands it over then);
  a row whose card was imported before but whose invitation expired gets a new invitation
  and no new card;
* `exists`: nothing is written: the account already has a card with this email, or a card
  was imported for the address and its invitation is still valid. Importing the same file
  twice therefore creates nothing the second time (idempotent by email);
* `error`: the row's values are refused (app/accounts/import_csv.py), or its account is
  deactivated.

Each row is written in its own transaction (card, its imported_cards row, invitation,
email and events together, or none of them): a bad row never stops the file, and an import
cut short (the disk full) is finished by importing the same file again. A file refused
whole (encoding, header, size, rows) writes nothing. Cards are made by the cards domain's
own operation (cards.add_card), invitations by the team's (team.send_invitation).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal

import aiosqlite
import msgspec
from litestar import Request, Router, post
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody
from litestar.params import QueryParameter

from app import mail
from app.accounts import team
from app.accounts.import_csv import COLUMN_NAMES, MAX_BYTES, MAX_ROWS, Person, read_people
from app.accounts.users import User
from app.api.guards import require_admin
from app.api.openapi import TEXT
from app.api.problems import AUTHENTICATED, PROBLEM_MEDIA_TYPE, WRITE, Problem, problems
from app.cards import cards
from app.cards.types import CreateCardRequest
from app.config import Settings, SettingsDep
from app.db import Database, DatabaseDep, Tx, fetch_all, fetch_one, isoformat
from app.errors import DomainError, Invalid, TooLarge, Unsupported
from app.public.card_cache import PublicCards

Status = Literal["created", "invited", "exists", "error"]


class ImportRow(msgspec.Struct, rename="camel", omit_defaults=True):
    row: int  # as a spreadsheet numbers it: the header is row 1
    status: Status
    email: str | None = None
    error: str | None = None
    card_id: str | None = None  # the card this import created (not in a dry run)


class ImportResult(msgspec.Struct, rename="camel"):
    dry_run: bool
    rows: list[ImportRow]
    created: int
    invited: int
    exists: int
    errors: int


# --- SQL -----------------------------------------------------------------------------


async def _account(conn: aiosqlite.Connection, email: str) -> Any:
    return await fetch_one(conn, "SELECT user_id, deactivated_at FROM users WHERE email = ?", (email,))


async def _has_card(conn: aiosqlite.Connection, user_id: str, email: str) -> bool:
    row = await fetch_one(conn, "SELECT 1 FROM cards WHERE user_id = ? AND email = ? COLLATE NOCASE LIMIT 1", (user_id, email))
    return row is not None


async def _imported(conn: aiosqlite.Connection, email: str) -> Any:
    return await fetch_one(conn, "SELECT card_id FROM imported_cards WHERE email = ?", (email,))


async def _invitation_waiting(conn: aiosqlite.Connection, email: str, now_text: str) -> bool:
    row = await fetch_one(
        conn, "SELECT 1 FROM team_invitations WHERE email = ? AND used_at IS NULL AND expires_at > ? LIMIT 1", (email, now_text)
    )
    return row is not None


# --- operations ----------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    status: Status
    owner: str | None = None  # who the new card belongs to; None: no new card
    invite: bool = False
    error: str | None = None


async def _outcome(conn: aiosqlite.Connection, admin_id: str, email: str, now_text: str) -> Outcome:
    """What importing this address does now (see the module's docstring)."""
    account = await _account(conn, email)
    if account is not None:
        if await _has_card(conn, account["user_id"], email) or await _imported(conn, email):
            return Outcome("exists")
        if account["deactivated_at"]:
            return Outcome("error", error="the account with this email is deactivated: reactivate it first")
        return Outcome("created", owner=account["user_id"])
    if await _imported(conn, email):
        if await _invitation_waiting(conn, email, now_text):
            return Outcome("exists")
        return Outcome("invited", invite=True)
    return Outcome("invited", owner=admin_id, invite=True)


def card_request(person: Person) -> CreateCardRequest:
    """The row as a card, through the API's own type (its rules and limits). Raises msgspec.ValidationError."""
    return msgspec.convert(person.values, CreateCardRequest, strict=True)


async def import_people(
    db: Database, outbox: mail.Outbox, public_cards: PublicCards, settings: Settings,
    admin_id: str, people: list[Person], *, dry_run: bool,
) -> ImportResult:
    """Import the rows read by import_csv.read_people; with `dry_run`, only say what each
    row would do. Row problems are rows with status `error`; raises only what the storage
    raises (a full disk: the rows before stay written, and importing again finishes)."""
    rows: list[ImportRow] = []
    for person in people:
        if person.error is not None:
            rows.append(ImportRow(person.row, "error", person.email, person.error))
            continue
        assert person.email is not None
        try:
            data = card_request(person)
            cards.settle(data, None)  # what add_card refuses, refused here in a dry run too
        except (msgspec.ValidationError, Invalid) as exc:
            rows.append(ImportRow(person.row, "error", person.email, str(exc)))
            continue
        if dry_run:
            async with db.read() as conn:
                outcome = await _outcome(conn, admin_id, person.email, isoformat(db.now()))
            rows.append(ImportRow(person.row, outcome.status, person.email, outcome.error))
            continue
        try:
            async with db.write() as tx:
                outcome = await _outcome(tx.conn, admin_id, person.email, tx.now_text)
                card_id = await _carry_out(tx, outbox, public_cards, settings, admin_id, person.email, data, outcome)
        except DomainError as exc:  # a conflict between the check and the write: this row only
            rows.append(ImportRow(person.row, "error", person.email, exc.message))
            continue
        rows.append(ImportRow(person.row, outcome.status, person.email, outcome.error, card_id))
    counts = {status: sum(1 for row in rows if row.status == status) for status in ("created", "invited", "exists", "error")}
    return ImportResult(dry_run, rows, counts["created"], counts["invited"], counts["exists"], counts["error"])


async def _carry_out(
    tx: Tx, outbox: mail.Outbox, public_cards: PublicCards, settings: Settings,
    admin_id: str, email: str, data: CreateCardRequest, outcome: Outcome,
) -> str | None:
    card_id = None
    if outcome.owner is not None:
        # An admin imports: the team's defaults apply, its locks do not (as for an admin's own card).
        card = await cards.add_card(tx, public_cards, outcome.owner, data, admin=True, actor_id=admin_id)
        card_id = card.card_id
        if outcome.invite:
            await tx.conn.execute(
                "INSERT INTO imported_cards (email, card_id, imported_by, imported_at) VALUES (?, ?, ?, ?)",
                (email, card_id, admin_id, tx.now_text),
            )
    if outcome.invite:
        await team.send_invitation(tx, outbox, settings, admin_id, email)
    return card_id


async def claim_cards(tx: Tx, public_cards: PublicCards, user: User) -> int:
    """A new account registered through a team invitation for its address: the cards
    imported for that address become its own (in the registration's transaction). Returns
    how many."""
    rows = await fetch_all(
        tx.conn,
        """UPDATE cards SET user_id = ? WHERE card_id IN (SELECT card_id FROM imported_cards WHERE email = ?)
        RETURNING card_id, slug, full_name,
            (SELECT imported_by FROM imported_cards i WHERE i.card_id = cards.card_id) AS from_user_id""",
        (user.user_id, user.email),
    )
    await tx.conn.execute("DELETE FROM imported_cards WHERE email = ?", (user.email,))
    await cards.changed(tx, public_cards, [row["slug"] for row in rows])
    for row in rows:
        data = {"cardId": row["card_id"], "slug": row["slug"], "fullName": row["full_name"],
                "fromUserId": row["from_user_id"], "toUserId": user.user_id}
        await tx.emit("card.transferred", data, actor_id=user.user_id, user_id=user.user_id)
    return len(rows)


# --- the handler ---------------------------------------------------------------------

CSV_MEDIA_TYPE = "text/csv"
COLUMNS_TEXT = ", ".join(COLUMN_NAMES)


def read_upload(content_type: str, charset: str | None, body: bytes) -> list[Person]:
    """The people of an uploaded file. Raises Unsupported (not text/csv, or another charset
    named) and Invalid (import_csv.read_people)."""
    if content_type.lower() != CSV_MEDIA_TYPE:
        raise Unsupported("send the file as text/csv (UTF-8)", code="csv_type")
    if charset and charset.lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise Unsupported(f"the file must be UTF-8, not {charset[:40]}: save it as CSV UTF-8", code="csv_encoding")
    return read_people(body)


@dataclasses.dataclass
class CsvUpload(Operation):
    """The operation with its request body: the CSV file itself."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            content={CSV_MEDIA_TYPE: OpenAPIMediaType(schema=TEXT)},
            required=True,
            description=f"UTF-8 CSV with a header row, at most {MAX_ROWS} rows and 2 MB. Columns: {COLUMNS_TEXT} "
            "(email and fullName required).",
        )


IMPORT_PROBLEMS = {
    **problems(*AUTHENTICATED, 403, 400, *WRITE),
    413: ResponseSpec(Problem, media_type=PROBLEM_MEDIA_TYPE, generate_examples=False, description="The file is over 2 MB"),
    415: ResponseSpec(Problem, media_type=PROBLEM_MEDIA_TYPE, generate_examples=False,
                      description="Not sent as text/csv, or with a charset other than UTF-8"),
    422: ResponseSpec(Problem, media_type=PROBLEM_MEDIA_TYPE, generate_examples=False,
                      description=f"The file as a whole is refused, nothing written: not UTF-8, not CSV, a header without "
                      f"email and fullName or with an unknown column, no rows, or more than {MAX_ROWS} rows"),
}


@post(
    "/import", operation_id="importPeople", status_code=200,
    summary="Import people from a CSV: a card each, invitations to those without an account (admin)",
    description="`dryRun=true` answers what each row would do and writes nothing. Each row answers `created` (a card for "
    "an existing account), `invited` (a card, and an invitation emailed), `exists` (nothing written: already imported "
    "or already has a card with this email) or `error` with why; a bad row does not stop the others. See docs/api.md.",
    operation_class=CsvUpload, request_max_body_size=MAX_BYTES, responses=IMPORT_PROBLEMS,
)
async def import_handler(
    request: Request[User, Any, Any], db: DatabaseDep, settings: SettingsDep,
    dry_run: Annotated[bool, QueryParameter(name="dryRun", description="only say what each row would do")] = False,
) -> ImportResult:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BYTES:  # said before any of it is read
        raise TooLarge("the file is larger than 2 MB: split it into files of 1,000 rows or fewer", code="csv_too_large")
    media_type, options = request.content_type
    body = await request.body()  # 413 past request_max_body_size, for a body without a length too
    people = read_upload(media_type, options.get("charset"), body)
    state = request.app.state
    return await import_people(db, state.outbox, state.public_cards, settings, request.user.user_id, people, dry_run=dry_run)


router = Router("/admin", route_handlers=[import_handler], guards=[require_admin], tags=["team"])
