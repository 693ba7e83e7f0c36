"""How long a card photo takes to process (app/cards/images.py `process`): a 12 MP JPEG
(4000×3000, a phone's photo, drawn here with Pillow) and a 12 MP PNG, each decoded,
turned upright, cropped, scaled to 512 px and a 96 px thumbnail, and re-encoded; and how
long the link preview (app/public/og_image.py, og.png) takes to draw with that photo.

    .venv/bin/python bench/image_upload.py [rounds]

Prints the median and the slowest of `rounds` runs (7 by default) per upload, in one
thread: what one upload costs the thread pool that runs it off the event loop.
"""

from __future__ import annotations

import io
import statistics
import sys
import time

from PIL import Image

from app.cards.images import process


def photo(fmt: str) -> bytes:
    """A 4000×3000 picture with detail in it (noise over a gradient), as a camera's would be."""
    gradient = Image.linear_gradient("L").resize((4000, 3000)).convert("RGB")
    # A PNG of camera noise would pass the 10 MB limit (refused, not processed): the PNG is
    # the smooth picture, which still decodes all 12 MP.
    noise = Image.effect_noise((4000, 3000), 40 if fmt == "JPEG" else 4).convert("RGB")
    picture = Image.blend(noise, gradient, 0.5)
    out = io.BytesIO()
    picture.save(out, fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return out.getvalue()


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    for fmt in ("JPEG", "PNG"):
        upload = photo(fmt)
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            processed = process(upload)
            times.append(time.perf_counter() - started)
        print(
            f"12 MP {fmt} ({len(upload) / 1e6:.1f} MB): median {statistics.median(times) * 1000:.0f} ms, "
            f"slowest {max(times) * 1000:.0f} ms over {rounds} runs; stored {len(processed.image) / 1024:.0f} KiB "
            f"+ {len(processed.thumbnail) / 1024:.1f} KiB thumbnail"
        )
    preview(rounds, processed.image)


def preview(rounds: int, photo_jpeg: bytes) -> None:
    from app.public import og_image

    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        og_image.draw("Dr. Robert de la Cruz Jr.", "Head of Partnerships · Acme Corporation", "https://qr.example.com/c/abc234x",
                      accent="#0f766e", photo_jpeg=photo_jpeg)
        times.append(time.perf_counter() - started)
    print(f"og.png (1200×630, with the photo): median {statistics.median(times) * 1000:.0f} ms, "
          f"slowest {max(times) * 1000:.0f} ms over {rounds} runs (the first includes loading the font)")


if __name__ == "__main__":
    main()
