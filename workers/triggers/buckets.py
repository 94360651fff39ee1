"""New objects under S3 prefixes: the bucket's event notifications, consumed from an SQS queue, and a
listing of each prefix at every rescan (the fallback, and the only source without a queue).

S3 shows an object only once it is whole (a multipart upload when it completes), so an object is
never half-written; the marker rule (``MLC_WATCH_READY=marker``) applies to objects too. The events
and the listing give an object the same identity (URI, size, ETag), so either may see it first.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from workers.config import S3Settings, WatchSettings
from workers.triggers.watches import Arrival

__all__ = ["BucketError", "BucketSource", "s3_events"]


class BucketError(Exception):
    """S3 or SQS failed; the message names the call and the reason."""


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _etag(value: str) -> str:
    return value.strip('"')


def s3_events(body: str) -> list[Arrival]:
    """The objects created that an S3 event notification (an SQS message's body) tells of."""
    try:
        message = json.loads(body)
    except ValueError:
        return []
    if isinstance(message, dict) and isinstance(message.get("Message"), str):  # delivered through SNS
        return s3_events(message["Message"])
    records = message.get("Records") if isinstance(message, dict) else None
    arrivals = []
    for record in records or []:
        if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        s3 = record.get("s3") or {}
        bucket, found = (s3.get("bucket") or {}).get("name"), s3.get("object") or {}
        if bucket and found.get("key"):
            arrivals.append(Arrival(uri=f"s3://{bucket}/{unquote_plus(found['key'])}", size=int(found.get("size") or 0),
                                    stamp=_etag(str(found.get("eTag") or found.get("etag") or ""))))
    return arrivals


class BucketSource:
    """Listings of S3 prefixes and the events of an SQS queue (when ``settings.sqs_queue_url`` is set)."""

    def __init__(self, s3: S3Settings, settings: WatchSettings) -> None:
        self._s3 = boto3.client("s3", endpoint_url=s3.endpoint_url, region_name=s3.region or "us-east-1")
        self._queue = settings.sqs_queue_url
        self._wait_s = max(0, min(20, int(settings.poll_s)))
        self._sqs = boto3.client("sqs", endpoint_url=settings.sqs_endpoint_url or s3.endpoint_url,
                                 region_name=s3.region or "us-east-1") if self._queue else None

    def listing(self, location: str) -> list[Arrival]:
        """The objects directly under the prefix ``location`` (``s3://bucket/prefix``)."""
        bucket, prefix = _split(location)
        prefix = f"{prefix}/" if prefix else ""
        arrivals: list[Arrival] = []
        try:
            for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix,
                                                                            Delimiter="/"):
                arrivals += [Arrival(uri=f"s3://{bucket}/{item['Key']}", size=int(item["Size"]),
                                     stamp=_etag(item["ETag"])) for item in page.get("Contents", [])]
        except (BotoCoreError, ClientError) as exc:
            raise BucketError(f"listing {location} failed: {exc}") from exc
        return arrivals

    def arrival(self, uri: str) -> Arrival | None:
        """The object at ``uri`` as it is now; ``None`` when there is none."""
        bucket, key = _split(uri)
        try:
            head = self._s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise BucketError(f"looking at {uri} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise BucketError(f"looking at {uri} failed: {exc}") from exc
        return Arrival(uri=uri, size=int(head["ContentLength"]), stamp=_etag(head["ETag"]))

    def exists(self, uri: str) -> bool:
        return self.arrival(uri) is not None

    def noticed(self) -> list[Arrival]:
        """The objects the queue's events tell of since the last call (long-polls up to ``poll_s``)."""
        if self._sqs is None:
            return []
        try:
            answer: dict[str, Any] = self._sqs.receive_message(QueueUrl=self._queue, MaxNumberOfMessages=10,
                                                               WaitTimeSeconds=self._wait_s)
            arrivals: list[Arrival] = []
            for message in answer.get("Messages", []):
                arrivals += s3_events(message.get("Body", ""))
                self._sqs.delete_message(QueueUrl=self._queue, ReceiptHandle=message["ReceiptHandle"])
        except (BotoCoreError, ClientError) as exc:
            raise BucketError(f"reading the S3 events of {self._queue} failed: {exc}") from exc
        return arrivals

    @property
    def has_events(self) -> bool:
        return self._sqs is not None
