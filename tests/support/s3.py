"""A real S3-compatible server (moto's, with SQS too) for the tests of object storage."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.ports import free_port
from workers.config import S3Settings

__all__ = ["moto_server"]

CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


@contextmanager
def moto_server() -> Iterator[S3Settings]:
    """moto's S3 and SQS server on a free port, with test credentials in the environment while it runs; the
    settings that reach it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    saved = {name: os.environ.get(name) for name in CREDENTIALS}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    host, port = server.get_host_and_port()
    try:
        yield S3Settings(endpoint_url=f"http://{host}:{port}", region="us-east-1")
    finally:
        server.stop()
        for name, value in saved.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
