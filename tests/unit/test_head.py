"""HEAD answers wherever GET does, in process, for every GET route in the app's route
table (on a real uvicorn server: tests/live/test_head.py).
"""

from __future__ import annotations

import uuid

from litestar.routes import HTTPRoute

PARAMETER_VALUES = {uuid.UUID: "00000000-0000-0000-0000-000000000000", int: "1"}


def test_every_get_route_answers_head(client, user):
    """The route table's every GET path (path parameters filled with values of their type)."""
    paths = []
    for route in client.app.routes:
        if isinstance(route, HTTPRoute) and "GET" in route.methods:
            path = route.path_format
            for name, parameter in route.path_parameters.items():
                path = path.replace("{" + name + "}", PARAMETER_VALUES.get(parameter.type, "x"))
            paths.append(path)
    assert {"/", "/health", "/v1/cards", "/app/cards", "/schema", "/schema/openapi.json"} <= set(paths)
    # The event streams never end by themselves: a GET would read forever. Their HEAD is the
    # GET's status and headers, ended at once (app/events/stream.py).
    streams = {"/v1/events/stream", "/app/events/stream"}
    assert streams <= set(paths)
    for path in streams:
        head = client.head(path, headers=user["headers"], follow_redirects=False)
        assert head.content == b"" and head.status_code in (200, 303), path
    assert client.head("/v1/events/stream", headers=user["headers"]).headers["content-type"].startswith("text/event-stream")
    for path in set(paths) - streams:
        got = client.get(path, headers=user["headers"], follow_redirects=False)
        head = client.head(path, headers=user["headers"], follow_redirects=False)
        assert (path, head.status_code) == (path, got.status_code)
        assert head.content == b"", path


