"""The client on several engine nodes: a home node per worker id, a node refusing connections passed
over for ``node_retry_s`` and tried again after. The live node is the session's engine; the dead one
is a port nothing listens on (so it refuses connections, as a killed node does)."""

from __future__ import annotations

import time

import pytest

from tests.conftest import free_port
from tests.support import wait_for
from workers.config import ConfigurationError, EngineSettings, load
from workers.engine import EngineClient
from workers.engine.errors import EngineUnavailable

pytestmark = pytest.mark.engine


def dead_node() -> str:
    return f"http://127.0.0.1:{free_port()}/engine-rest"


def worker_at_home(settings: EngineSettings, home: str) -> str:
    """A worker id whose home node is ``home``."""
    return next(worker for n in range(1000) if EngineClient(settings, worker := f"w{n}").nodes.home == home)


def test_nodes_are_read_by_commas_and_each_must_be_an_http_url(monkeypatch):
    monkeypatch.setenv("MLC_ENGINE_URL", "http://a:8080/engine-rest/")
    monkeypatch.setenv("MLC_ENGINE_NODES", "http://b:8080/engine-rest, http://a:8080/engine-rest")
    assert load(EngineSettings).node_urls == ["http://a:8080/engine-rest", "http://b:8080/engine-rest"]
    monkeypatch.setenv("MLC_ENGINE_NODES", "http://b:8080/engine-rest,b:8080")
    with pytest.raises(ConfigurationError, match="MLC_ENGINE_NODES.*'b:8080' is not an http"):
        load(EngineSettings)


def test_worker_ids_spread_over_the_nodes():
    settings = EngineSettings(url="http://a/engine-rest", nodes=["http://b/engine-rest", "http://c/engine-rest"])
    homes = [EngineClient(settings, f"host-{pid}").nodes.home for pid in range(60)]
    assert {homes.count(node) for node in settings.node_urls} <= set(range(10, 31))  # about a third each
    assert EngineClient(settings, "host-7").nodes.home == EngineClient(settings, "host-7").nodes.home


def test_a_node_refusing_connections_is_passed_over_and_tried_again_later(engine_settings):
    live = engine_settings.url.rstrip("/")
    settings = engine_settings.model_copy(update={"url": dead_node(), "nodes": [live], "node_retry_s": 3.0})
    dead = settings.node_urls[0]
    with EngineClient(settings, worker_at_home(settings, dead)) as client:
        assert client.base_url == dead
        started = time.monotonic()
        assert client.get("/engine") == [{"name": "default"}]  # went on to the live node in the same call
        assert client.base_url == live
        wait_for(lambda: client.base_url == dead, timeout_s=10, interval_s=0.05)
        assert time.monotonic() - started >= 2.9  # passed over for node_retry_s, then its home again
        assert client.get("/engine") == [{"name": "default"}]


def test_the_long_poll_fails_over_too_and_every_node_down_is_unavailable(engine_settings):
    settings = engine_settings.model_copy(update={"url": dead_node(), "nodes": [engine_settings.url]})
    with EngineClient(settings, worker_at_home(settings, settings.node_urls[0]),
                      async_response_timeout_ms=200) as client:
        assert client.fetch_and_lock("cluster-nobody", max_tasks=1) == []
    down = engine_settings.model_copy(update={"url": dead_node(), "nodes": [dead_node()]})
    with EngineClient(down) as client, pytest.raises(EngineUnavailable, match="engine unreachable"):
        client._send("GET", "/engine")
    with EngineClient(down) as client:  # both marked down: both tried again, not none
        with pytest.raises(EngineUnavailable):
            client._send("GET", "/engine")
        assert set(client.nodes.in_order()) == set(down.node_urls)
