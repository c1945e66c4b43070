"""Fixtures of the executor's tests: a real S3 API (moto's server mode, see tests/s3_server.py)."""

from tests.s3_server import s3_bucket, s3_endpoint

__all__ = ["s3_bucket", "s3_endpoint"]
