"""Team › Import (admins only): upload a CSV of people, see the dry run as a preview
table, confirm, see what each row did. The same operation as POST /v1/admin/import
(app/accounts/imports.py) reads and imports the file.

The preview page carries the uploaded file's bytes (base64) in a hidden field, and the
confirm button posts them back: nothing is stored between the two steps, the file is
read and checked again from scratch, and since the import is idempotent by email a
confirm sent twice (a reload) creates nothing the second time.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import ClientException, PermissionDeniedException

from app.accounts import imports
from app.accounts.import_csv import COLUMNS, MAX_BYTES, MAX_ROWS, Person, read_people
from app.config import Settings, SettingsDep
from app.console.web import ADMINS_ONLY, page, sentence
from app.db import Database, DatabaseDep
from app.errors import Invalid, TooLarge

# The upload's body: the file, the CSRF token and the multipart framing, with room for a
# file somewhat over the limit so that its refusal is said on this page. The confirm form
# carries the file in base64 (4/3 of it). Past these, the CSRF check (which reads the form
# first) answers the 413 error page.
UPLOAD_BODY = MAX_BYTES + 1024 * 1024
CONFIRM_BODY = MAX_BYTES * 4 // 3 + 1024 * 1024
TOO_LARGE = f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB. Split it into files of {MAX_ROWS:,} rows or fewer."
SAID = {
    "created": ("Card for their account", "ok"),
    "invited": ("Card and invitation", "ok"),
    "exists": ("Already there: nothing to do", ""),
    "error": ("Skipped", "off"),
}
COLUMN_ROWS = [
    {"name": name, "required": required, "example": example}
    for (name, _, required, _), example in zip(
        COLUMNS,
        ["jane@example.com", "Jane Doe", "Designer", "+1 555 123 4567", "Acme Ltd", "Marketing", "https://acme.example",
         "she/her", "Brand design for calm software"], strict=True,
    )
]


def _admin_only(request: Request) -> None:
    if not request.user.is_admin:
        raise PermissionDeniedException(ADMINS_ONLY)


def _table(people: list[Person], result: imports.ImportResult) -> list[dict[str, Any]]:
    by_row = {person.row: person for person in people}
    rows = []
    for row in result.rows:
        values = by_row[row.row].values
        label, tone = SAID[row.status]
        rows.append({
            "row": row.row, "email": row.email or "", "name": values.get("fullName", ""), "title": values.get("title", ""),
            "status": row.status, "label": label, "tone": tone, "error": sentence(row.error) if row.error else "",
        })
    return rows


def _import_page(request: Request, *, status: int = 200, error: str | None = None, **context: Any) -> Response:
    return page(
        request, "console/team/import.html", status=status, section="team", columns=COLUMN_ROWS, max_rows=MAX_ROWS,
        errors={"file": error} if error else {}, **{"step": "upload", "rows": [], "summary": None, "file": "", "name": "",
                                                    **context},
    )


async def _run(request: Request, db: Database, settings: Settings, body: bytes, name: str, *, dry_run: bool) -> Response:
    try:
        people = read_people(body)
    except Invalid as exc:
        return _import_page(request, status=422, error=sentence(exc.message))
    state = request.app.state
    result = await imports.import_people(
        db, state.outbox, state.public_cards, settings, request.user.user_id, people, dry_run=dry_run
    )
    summary = {"created": result.created, "invited": result.invited, "exists": result.exists, "errors": result.errors,
               "writes": result.created + result.invited}
    return _import_page(
        request, step="preview" if dry_run else "done", rows=_table(people, result), summary=summary, name=name,
        file=base64.b64encode(body).decode() if dry_run else "",
    )


@get("/team/import")
async def import_form(request: Request) -> Response:
    _admin_only(request)
    return _import_page(request)


def _too_large(request: Request) -> bool:
    length = request.headers.get("content-length", "")
    return length.isdigit() and int(length) > UPLOAD_BODY


@post("/team/import", request_max_body_size=UPLOAD_BODY)
async def import_preview(request: Request, db: DatabaseDep, settings: SettingsDep) -> Response:
    """The uploaded file's dry run, as a preview table with the confirm button."""
    _admin_only(request)
    try:
        if _too_large(request):
            raise TooLarge(TOO_LARGE)
        form = await request.form()
    except (TooLarge, ClientException) as exc:
        if isinstance(exc, ClientException) and exc.status_code != 413:
            raise
        return _import_page(request, status=413, error=TOO_LARGE)
    upload = form.get("file")
    body = await upload.read() if isinstance(upload, UploadFile) else b""
    if not body:
        return _import_page(request, status=422, error="Choose a CSV file to upload first.")
    if len(body) > MAX_BYTES:
        return _import_page(request, status=413, error=TOO_LARGE)
    name = (upload.filename or "").rsplit("/", 1)[-1][:100] if isinstance(upload, UploadFile) else ""
    return await _run(request, db, settings, body, name, dry_run=True)


@post("/team/import/confirm", request_max_body_size=CONFIRM_BODY)
async def import_confirm(request: Request, db: DatabaseDep, settings: SettingsDep) -> Response:
    """The import itself, of the file the preview carried; the result per row."""
    _admin_only(request)
    form = await request.form()
    carried, name = form.get("file", ""), form.get("name", "")
    try:
        body = base64.b64decode(carried if isinstance(carried, str) else "", validate=True)
    except (binascii.Error, ValueError):
        body = b""
    if not body:
        return _import_page(request, status=422, error="The file did not come through. Upload it again.")
    if len(body) > MAX_BYTES:
        return _import_page(request, status=413, error=TOO_LARGE)
    return await _run(request, db, settings, body, name[:100] if isinstance(name, str) else "", dry_run=False)


handlers = [import_form, import_preview, import_confirm]
