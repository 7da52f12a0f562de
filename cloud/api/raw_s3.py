"""Raw batches received over HTTP land in the raw bucket, like the topic rule's S3 action."""

from __future__ import annotations

from typing import Any


class S3RawStore:
    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    def put(self, key: str, body: bytes) -> None:
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType="application/json")
