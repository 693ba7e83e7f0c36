"""The cards' photos and logos as the public pages serve them, kept in memory (SPEC §8:
answered from memory, at the primary and at edges, like the card page).

Keyed by the image's content hash (and whether it is the thumbnail): what a key names never
changes, so nothing here is ever forgotten on an edit, only pushed out by newer images
when the cache is full. Whether a hash is still the card's current one is decided by the
card cache (the card's row carries it), which every edit forgets; an old URL is 404 then.
"""

from __future__ import annotations

from cachetools import LRUCache

from app import qr
from app.ops import tally
from app.public.pages import Answer

IMAGE_HITS, IMAGE_MISSES = tally.Counted(qr.CACHE_HITS.labels("image")), tally.Counted(qr.CACHE_MISSES.labels("image"))
# A 512 px photo is 30 to 80 KB, its thumbnail 2 to 4: some 500 cards' photos.
CACHE_BYTES = 32 * 1024 * 1024
IMAGE_HEADERS = [
    (b"content-type", b"image/jpeg"),
    # The URL names the content: a new image gets a new URL, so this one never changes.
    (b"cache-control", b"public, max-age=31536000, immutable"),
    (b"x-content-type-options", b"nosniff"),
]


class ImageCache:
    """Image answers by (content hash, thumbnail), at most `size` bytes of images."""

    def __init__(self, size: int = CACHE_BYTES) -> None:
        self._answers: LRUCache[tuple[str, bool], Answer] = LRUCache(maxsize=size, getsizeof=lambda answer: len(answer.body))

    def cached(self, content_hash: str, thumbnail: bool) -> Answer | None:
        found = self._answers.get((content_hash, thumbnail))
        if found is None:
            IMAGE_MISSES.n += 1
        else:
            IMAGE_HITS.n += 1
        return found

    def put(self, content_hash: str, thumbnail: bool, jpeg: bytes) -> Answer:
        answer = Answer(200, IMAGE_HEADERS, jpeg)
        if len(jpeg) <= self._answers.maxsize:
            self._answers[(content_hash, thumbnail)] = answer
        return answer
