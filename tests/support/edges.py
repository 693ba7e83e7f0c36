"""A primary and its edges as `qrcontact serve` processes sharing a replica on moto's S3:
the edge's settings and how to tell an answer it gave from its own copy."""

from __future__ import annotations

import secrets

import httpx

from tests.support.s3 import S3_ENV
from tests.support.service import Service

TOKEN = secrets.token_urlsafe(32)


def replica_url(endpoint: str, bucket: str) -> str:
    return f"s3://{bucket}/db?endpoint={endpoint}&region=us-east-1&forcePathStyle=true"


def edge_env(primary: Service, internal_url: str, replica: str) -> dict[str, str]:
    return {
        "ROLE": "edge", "PRIMARY_URL": primary.url, "PRIMARY_INTERNAL_URL": internal_url, "EDGE_TOKEN": TOKEN,
        "REPLICA_URL": replica, "PUBLIC_BASE_URL": primary.url, **S3_ENV,
    }


def served_by_the_edge(response: httpx.Response) -> bool:
    return "via" not in response.headers
