"""How long a bulk import of 1,000 people takes (POST /v1/admin/import, app/accounts/imports.py):
the dry run, the import itself with nobody having an account yet (the dearest case: per row
a card, its imported_cards row, a team invitation, its email queued and two events, each
row its own transaction), and the same file again (every row `exists`, nothing written).

    .venv/bin/python bench/import_rows.py [rows]

The app runs in process (Litestar's TestClient) over a SQLite file in a temp folder, as
the unit tests run it: the figure is the operation's, without the network.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from litestar.testing import TestClient

from app.main import create_app
from tests.support.app import make_settings, register


def people(rows: int) -> bytes:
    lines = ["email,fullName,title,phone,organization,website"]
    lines += [f"person{i}@bench.example,Person {i},Engineer,+1 555 {i:07d},Acme Ltd,https://acme.example/p/{i}" for i in range(rows)]
    return ("\r\n".join(lines) + "\r\n").encode()


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    body = people(rows)
    with tempfile.TemporaryDirectory() as folder, TestClient(create_app(make_settings(Path(folder))),
                                                            base_url="https://qr.example.test") as client:
        admin = register(client, "admin@bench.example")
        headers = {**admin["headers"], "Content-Type": "text/csv"}
        for label, params in (("dry run", {"dryRun": "true"}), ("import", {}), ("same file again", {})):
            started = time.perf_counter()
            response = client.post("/v1/admin/import", content=body, params=params, headers=headers)
            took = time.perf_counter() - started
            assert response.status_code == 200, response.text
            result = response.json()
            print(f"{label}: {rows} rows ({len(body) / 1024:.0f} KiB) in {took:.2f} s ({took / rows * 1000:.2f} ms a row): "
                  f"created {result['created']}, invited {result['invited']}, exists {result['exists']}, errors {result['errors']}")


if __name__ == "__main__":
    main()
