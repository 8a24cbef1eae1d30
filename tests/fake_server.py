"""What the fake servers (fake_clamd, fake_icap) do alike: listen, accept on a thread
of their own, serve each connection on another, and close it all when their `with`
block ends. A subclass makes the listening socket and answers in _client(conn)."""

import socket
import threading

SMALL_WINDOW = 64 * 1024


class FakeServer:
    def __init__(self):
        self.connections = 0  # accepted so far
        self._stop = threading.Event()
        self._clients = []
        self._accepted_lock = threading.Lock()

    def _listen(self, sock: socket.socket, address, small_window: bool = False):
        """Binds and listens. small_window: a receive buffer that accepted connections
        inherit, so that the plugin's upload waits for our reads instead of filling
        megabytes of kernel buffer."""
        if small_window:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_WINDOW)
        sock.bind(address)
        sock.listen(16)
        sock.settimeout(0.2)  # how soon the accept loop sees _stop
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()
        self._closed()
        for c in list(self._clients):
            try:
                c.close()
            except OSError:
                pass

    def _closed(self):
        """After the listening socket is closed: what else the server leaves behind."""

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._accepted_lock:
                self.connections += 1
            self._clients.append(conn)
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn):
        raise NotImplementedError
