"""How often a proxied turn on PostgreSQL waits for the database: counted on the wire, by a relay between the
store and the server that counts the turnarounds (the server answering after the client spoke). Each one
costs a wake-up of the server's backend process and then of the service's event loop; on a busy machine that
is milliseconds each, so they are most of what the proxy adds on PostgreSQL (bench/RESULTS.md "Proxy")."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Iterator

import pytest

from claude_history.server import ServerConfig, create_app
from claude_history.server.running import BackgroundServer
from claude_history.stores import open_store
from claude_history.testing import Simulator

from .conftest import MODEL, Service


class Relay:
    """A TCP relay to PostgreSQL that counts turnarounds: data from the server after data from the client."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.turnarounds = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            last = ["server"]
            threading.Thread(target=self._pump, args=(client, server, "client", last), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, "server", last), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, side: str, last: list[str]) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    if side == "server" and last[0] == "client":
                        self.turnarounds += 1
                    last[0] = side
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def relayed(postgres_url: str, sim: Simulator) -> Iterator[tuple[Service, Relay]]:
    schema = "rt" + uuid.uuid4().hex[:10]
    relay = Relay("127.0.0.1", 5432)
    url = postgres_url.replace("127.0.0.1:5432", f"127.0.0.1:{relay.port}")
    assert url != postgres_url
    store_url = f"{url}?schema={schema}&pool_min_size=1&pool_max_size=1"
    config = ServerConfig(store_url=store_url, upstream_url=sim.base_url, upstream_key="test", auth=False)
    try:
        with BackgroundServer(create_app(config)) as server:
            yield Service(server.base_url, store_url, {"acme": "unused"}), relay
    finally:
        relay.close()
        import psycopg

        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_a_proxied_turn_waits_for_postgresql_twice(relayed: tuple[Service, Relay]) -> None:
    """Read the session (a warm session: its row, with the commit of the read) and write the turn (begin,
    expiry, the compare-and-swap with the rows in one statement, and the commit, sent at once): two waits,
    whatever the length of the session (it was 15, one per statement, BEGIN and COMMIT; then 4, while the
    commit of each went on its own)."""
    service, relay = relayed
    client = service.client(session="rt")
    counts = []
    for i in range(4):
        before = relay.turnarounds
        client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": f"turn {i}"}])
        counts.append(relay.turnarounds - before)
    assert counts[1:] == [2, 2, 2], counts
    stored = open_store(service.store_url).load("rt")
    assert stored.version == 4 and [m.message["content"] for m in stored.messages][::2] == [
        f"turn {i}" for i in range(4)
    ]
