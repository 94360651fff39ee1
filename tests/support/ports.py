"""Free loopback ports for the servers the tests and the benchmarks start of their own.

The standard library only, and nothing of the test configuration (``tests/conftest.py``), so that
benchmarks can import it too.
"""

from __future__ import annotations

import socket

__all__ = ["free_port", "free_port_block"]


def free_port() -> int:
    """A port free now, picked by the kernel from its ephemeral range (32768 and up)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_block(count: int, start: int = 20_000, stop: int = 32_000) -> int:
    """The first of ``count`` consecutive free ports from ``start`` on, the block ending before ``stop``. Below
    the kernel's ephemeral range (the default) no :func:`free_port` picked later can fall inside the block."""
    for base in range(start, stop - count, count):
        try:
            sockets = []
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports between {start} and {stop}")
