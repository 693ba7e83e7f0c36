"""S3 for tests: moto_server on loopback (the `s3_endpoint` fixture starts it) and its buckets."""

from __future__ import annotations

S3_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}


def make_bucket(endpoint: str, name: str) -> None:
    import boto3

    s3 = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    s3.create_bucket(Bucket=name)
