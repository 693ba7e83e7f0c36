"""The live event stream (SPEC §9) against a real server: Server-Sent Events as a client
reads them, resuming after Last-Event-ID with exactly the missed events, the heartbeat,
the per-account bound, and a server that stops promptly with a stream open."""

from __future__ import annotations

import threading
import time

import httpx

from tests.support.app import assert_problem, create_card, make_settings, register
from tests.support.live_server import LiveServer
from tests.support.sse import open_stream
from tests.support.waiting import wait_until


def stream_client(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=10)


def test_events_arrive_live_and_a_reconnect_gets_exactly_the_missed_ones(live):
    admin = register(live.http)  # the first account is the admin
    member = register(live.http)
    with stream_client(live) as client:
        with open_stream(client, "/v1/events/stream", headers=member["headers"]) as stream:
            create_card(live.http, admin["headers"], fullName="Admin's card")  # not the member's business
            card = create_card(live.http, member["headers"])
            first = stream.next_event()
            assert (first.event, first.json["type"], first.json["data"]["cardId"]) == ("card.created", "card.created", card["cardId"])
            assert first.id == first.json["eventId"]
        # Missed while away: two changes; Last-Event-ID asks for exactly those.
        live.http.patch(f"/v1/cards/{card['cardId']}", json={"title": "CTO"}, headers=member["headers"])
        live.http.delete(f"/v1/cards/{card['cardId']}", headers=member["headers"])
        live.app.state.event_streams.heartbeat = 0.2
        headers = {**member["headers"], "Last-Event-ID": first.id}
        with open_stream(client, "/v1/events/stream", headers=headers) as stream:
            missed = [stream.next(), stream.next()]
            assert [m.event for m in missed] == ["card.updated", "card.deleted"]
            assert all(m.json["data"]["cardId"] == card["cardId"] for m in missed)
            assert stream.next().comments == ["heartbeat"]  # and nothing more
        # `after` does the same, and a type filter narrows it; the admin sees every account's events.
        with open_stream(client, f"/v1/events/stream?after={first.id}&type=card.deleted", headers=admin["headers"]) as stream:
            assert stream.next_event().event == "card.deleted"
            assert stream.next().comments == ["heartbeat"]


def test_a_heartbeat_comment_keeps_a_quiet_stream_alive(live):
    user = register(live.http)
    live.app.state.event_streams.heartbeat = 0.1
    with stream_client(live) as client, open_stream(client, "/v1/events/stream", headers=user["headers"]) as stream:
        beats = [stream.next() for _ in range(3)]
        assert all(beat.comments == ["heartbeat"] and beat.event is None and beat.data is None for beat in beats)


def test_streams_are_bounded_per_account_and_a_closed_one_frees_its_place(live):
    user, other = register(live.http), register(live.http)
    streams = live.app.state.event_streams
    streams.per_user = 2
    clients = [stream_client(live) for _ in range(4)]
    try:
        with open_stream(clients[0], "/v1/events/stream", headers=user["headers"]):
            with open_stream(clients[1], "/v1/events/stream", headers=user["headers"]):
                refused = clients[2].get("/v1/events/stream", headers=user["headers"])
                assert_problem(refused, 429)
                assert int(refused.headers["retry-after"]) > 0
                with open_stream(clients[3], "/v1/events/stream", headers=other["headers"]):  # another account's own bound
                    assert streams.count == 3
        wait_until(lambda: streams.count == 0, what="the closed streams to give their places back")
        with open_stream(clients[2], "/v1/events/stream", headers=user["headers"]):
            pass
        assert_problem(clients[2].get("/v1/events/stream"), 401)
    finally:
        for client in clients:
            client.close()


def test_a_server_with_a_stream_open_stops_promptly(tmp_path):
    server = LiveServer(make_settings(tmp_path))
    user = register(server.http)
    ended = threading.Event()

    def read_to_the_end(stream):
        while stream.next() is not None:
            pass
        ended.set()

    with stream_client(server) as client, open_stream(client, "/v1/events/stream", headers=user["headers"]) as stream:
        reader = threading.Thread(target=read_to_the_end, args=(stream,), daemon=True)
        reader.start()
        began = time.monotonic()
        server.http.close()
        server.server.should_exit = True
        server.thread.join(10)
        # uvicorn would wait 20 s (timeout_graceful_shutdown) for a stream nobody ended.
        assert not server.thread.is_alive() and time.monotonic() - began < 5
        assert ended.wait(5)  # the client saw the stream end, not hang
