"""The bot pattern of the public pages (the pages themselves: tests/live/test_public.py)."""

from __future__ import annotations

from app.public.answers import is_bot
from tests.support.app import PHONE_UA


def test_bot_pattern_leaves_phones_alone():
    phones = [
        PHONE_UA,
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    ]
    assert not any(is_bot(p) for p in phones)
