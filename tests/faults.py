"""A TCP forwarder a test owns, to make a service's outage without touching the service: in front of
Postgres, Redis or S3, it relays (`up`), refuses connections (`refuse`: nothing listens, and the
connections it relayed are cut), or goes silent (`hang`: as a server process that stopped, e.g.
SIGSTOP — the kernel still completes new connections into the listen backlog and takes what is
sent into its buffers, but nothing is read or answered; after `up`, what waited is relayed)."""

import selectors
import socket
import threading
import time


class Forwarder:
    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.mode = "up"
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._listener = None
        self.port = None
        self._stop = threading.Event()
        self._listen()
        self._thread = threading.Thread(target=self._run, name="forwarder", daemon=True)
        self._thread.start()

    # --- what a test calls -------------------------------------------------------------------

    def up(self) -> None:
        with self._lock:
            self.mode = "up"
            if self._listener is None:
                self._listen()

    def refuse(self) -> None:
        """Connections are refused (nothing listens on the port) and the open ones are cut."""
        with self._lock:
            self.mode = "refuse"
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            for client, server in self._pairs:
                for sock in (client, server):
                    _close(sock)
            self._pairs.clear()

    def hang(self) -> None:
        """Nothing is read or answered, on new connections and open ones alike, until `up`."""
        with self._lock:
            self.mode = "hang"
            if self._listener is None:
                self._listen()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        with self._lock:
            if self._listener is not None:
                self._listener.close()
            for client, server in self._pairs:
                _close(client)
                _close(server)
            self._pairs.clear()

    # --- the relay ---------------------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port or 0))
        listener.listen(128)
        listener.setblocking(False)
        self.port = listener.getsockname()[1]
        self._listener = listener

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                listener, pairs, mode = self._listener, list(self._pairs), self.mode
            if mode == "hang":
                time.sleep(0.05)  # Stopped: the kernel queues connections and bytes meanwhile.
                continue
            selector = selectors.DefaultSelector()
            if listener is not None:
                selector.register(listener, selectors.EVENT_READ, None)
            for client, server in pairs:
                for sock, peer in ((client, server), (server, client)):
                    try:
                        selector.register(sock, selectors.EVENT_READ, peer)
                    except (ValueError, KeyError, OSError):
                        pass
            try:
                events = selector.select(timeout=0.05) if selector.get_map() else []
            except OSError:
                events = []
            if not selector.get_map():
                time.sleep(0.05)
            for key, _ in events:
                if key.data is None:
                    self._accept(key.fileobj, mode)
                else:
                    self._relay(key.fileobj, key.data, mode)
            selector.close()

    def _accept(self, listener, mode) -> None:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        try:
            server = socket.create_connection(self.target, timeout=2)
        except OSError:
            _close(client)
            return
        client.setblocking(False)
        server.setblocking(False)
        with self._lock:
            self._pairs.append((client, server))

    def _relay(self, sock, peer, mode) -> None:
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(sock)
            return
        try:
            peer.setblocking(True)
            peer.sendall(data)
            peer.setblocking(False)
        except OSError:
            self._drop(sock)

    def _drop(self, sock) -> None:
        with self._lock:
            for pair in list(self._pairs):
                if sock in pair:
                    self._pairs.remove(pair)
                    for each in pair:
                        _close(each)


def _close(sock) -> None:
    try:
        sock.close()
    except OSError:
        pass
