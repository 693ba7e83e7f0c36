"""How long the card carried everywhere takes to make (SPEC §10), each on a card drawn for
the first time (nothing cached): a 1024 px code with the logo in its centre, an Apple
Wallet pass (signed with a throwaway certificate chain), a video-call background, the
business card and A4 sheet PDFs, and the email signature.

    .venv/bin/python bench/carried_figures.py            # 5 cards, about half a minute

In process (Litestar's TestClient, a temporary database with every migration), so each
figure is the request through the app: the drawing, plus a few milliseconds of HTTP
handling. Prints the median and the slowest of `--cards` cards. Needs the test extras
(`cryptography` for the wallet chain).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

from litestar.testing import TestClient
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.main import create_app  # noqa: E402
from tests.support.app import create_card, register  # noqa: E402
from tests.support.wallet import wallet_settings, write_wallet_files  # noqa: E402


def logo_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (512, 512), (180, 35, 26)).save(out, "JPEG", quality=90)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=5, help="cards, each drawn once (5)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-carried-"))
    settings = wallet_settings(root / "data", write_wallet_files(root / "wallet"))
    timings: dict[str, list[float]] = {}
    with TestClient(create_app(settings), base_url="https://qr.example.test") as client:
        headers = register(client)["headers"]
        for n in range(args.cards):
            card = create_card(client, headers, slug=f"carried-{n}", fullName=f"Carried Person {n}", title="Engineer")
            uploaded = client.put(f"/v1/cards/{card['cardId']}/logo", content=logo_jpeg(),
                                  headers={**headers, "Content-Type": "image/jpeg"})
            assert uploaded.status_code == 200, uploaded.text
            base = f"/v1/cards/{card['cardId']}"
            for name, path, extra in (
                ("code with logo, PNG 1024 px", f"{base}/qr?format=png&size=1024&logo=true", headers),
                ("code with logo, SVG 1024 px", f"{base}/qr?format=svg&size=1024&logo=true", headers),
                ("Apple Wallet pass (.pkpass)", f"/p/carried-{n}.pkpass", {}),
                ("background 1920x1080", f"{base}/background.png?size=1920x1080&layout=right", headers),
                ("business card PDF", f"{base}/print.pdf?layout=card", headers),
                ("A4 sheet of ten PDF", f"{base}/print.pdf?layout=sheet", headers),
                ("email signature", f"{base}/signature", headers),
            ):
                started = time.perf_counter()
                response = client.get(path, headers=extra)
                elapsed = time.perf_counter() - started
                assert response.status_code == 200, (path, response.status_code, response.text[:200])
                timings.setdefault(name, []).append(elapsed * 1000)
    print(f"{'first drawing of a card':32}{'median':>10}{'slowest':>10}   ({args.cards} cards)")
    for name, values in timings.items():
        print(f"{name:32}{statistics.median(values):>8.1f}ms{max(values):>8.1f}ms")


if __name__ == "__main__":
    main()
