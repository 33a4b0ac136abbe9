"""A TCP proxy in front of a real server that slows or cuts what the server sends, for source-database tests.

    proxy = ThrottledProxy("127.0.0.1", pg_port, bytes_per_second=8_000_000).start()
    engine = create_engine(f"postgresql+psycopg2://…@127.0.0.1:{proxy.port}/db")
    proxy.cut_after(2_000_000)      # every connection is dropped once the server sent 2 MB to it

Only the server → client direction is throttled (a token bucket per connection), as a slow network or a busy
database would; the client → server direction passes as it is. Nothing of the machine is slowed.
"""

import socket
import threading
import time

from eclipse_exports.local.services import free_port

CHUNK = 64 * 1024


class ThrottledProxy:
    """Forwards 127.0.0.1:``port`` to ``host``:``target_port``; see the module docstring."""

    def __init__(self, host: str, target_port: int, bytes_per_second: float | None = None) -> None:
        self.target = (host, target_port)
        self.rate = bytes_per_second
        self.limit: int | None = None
        self.port = free_port()
        self.cuts = 0
        self._listener: socket.socket | None = None
        self._stopped = threading.Event()

    def start(self) -> "ThrottledProxy":
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def cut_after(self, byte_count: int | None) -> None:
        """Drop every connection once the server has sent it ``byte_count`` bytes (``None``: never)."""
        self.limit = byte_count

    def stop(self) -> None:
        self._stopped.set()
        if self._listener is not None:
            self._listener.close()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_server: bool) -> None:
        sent, started = 0, time.monotonic()
        try:
            while data := source.recv(CHUNK):
                if from_server and self.limit is not None and sent + len(data) > self.limit:
                    self.cuts += 1
                    break
                sink.sendall(data)
                sent += len(data)
                if from_server and self.rate:
                    ahead = sent / self.rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                end.close()
