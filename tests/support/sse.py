"""Reading a Server-Sent Events stream as a client does: httpx streaming, lines parsed into
messages (id, event, data, comments), each read bounded by the client's timeout."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx


@dataclass
class Message:
    id: str | None = None
    event: str | None = None
    data: str | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def json(self) -> dict:
        assert self.data is not None
        return json.loads(self.data)


class Stream:
    """An open SSE response: `next()` is the next message (comment-only ones included), or
    None when the server ended the stream."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.iter_lines()

    def next(self) -> Message | None:
        message, seen = Message(), False
        for line in self.lines:
            if line == "":
                if seen:
                    return message
                continue
            seen = True
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                message.comments.append(value)
            elif name == "data":
                message.data = value if message.data is None else message.data + "\n" + value
            elif name in ("id", "event"):
                setattr(message, name, value)
        return message if seen else None

    def next_event(self) -> Message:
        """The next message that carries an event (heartbeats skipped)."""
        while (message := self.next()) is not None:
            if message.event is not None:
                return message
        raise AssertionError("the stream ended")

    def events(self, count: int) -> list[Message]:
        return [self.next_event() for _ in range(count)]


@contextlib.contextmanager
def open_stream(client: httpx.Client, url: str, *, expect_open: bool = True, **options) -> Iterator[Stream]:
    """The stream at `url`; with `expect_open`, its status is checked and its first message
    (the "open after …" comment that says the stream's start is fixed) read."""
    with client.stream("GET", url, **options) as response:
        stream = Stream(response)
        if expect_open:
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"].startswith("text/event-stream")
            first = stream.next()
            assert first is not None and first.comments[0].startswith("open after"), first
        yield stream
