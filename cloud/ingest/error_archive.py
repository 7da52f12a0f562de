"""Keeps refused messages under errors/ in the raw bucket, with the reason beside the bytes."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

from chantier.s3keys import error_key
from cloud.ingest.validation import Rejection


class ErrorArchive:
    """Writes one JSON document per refused message: reason, detail, context and raw payload."""

    def __init__(self, s3_client: Any, bucket: str) -> None:
        self._s3 = s3_client
        self._bucket = bucket

    def keep(self, raw: bytes, rejections: list[Rejection], context: dict[str, Any]) -> str:
        now_ms = int(time.time() * 1000)
        reason = rejections[0].reason if rejections else "unknown"
        key = error_key(reason, now_ms, uuid.uuid4().hex[:12])
        document = {
            "reason": reason,
            "rejections": [
                {"reason": r.reason, "detail": r.detail, "index": r.index} for r in rejections
            ],
            "context": context,
            "receivedAt": now_ms,
            "payloadBase64": base64.b64encode(raw).decode(),
        }
        self._s3.put_object(
            Bucket=self._bucket,
            Key=key,
            Body=json.dumps(document).encode(),
            ContentType="application/json",
        )
        return key
