"""A TCP forwarder a test owns, in front of a real service, to make its outages: refused or silent."""

import socket
import threading


class Forwarder:
    """Relays 127.0.0.1:`port` to 127.0.0.1:`upstream_port` while `mode` is "pass".

    - "refuse": every connection, open or new, is reset at once (a service that is down);
    - "silent": connections are accepted and what is sent is read, but nothing is relayed either
      way and nothing is answered, on open connections too (a service that hangs: the kernel
      acknowledges every byte, so no TCP timeout notices it; only the client's own bound does).
    Switching back to "pass" relays new connections again; connections made silent stay so."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.mode = "pass"
        self._lock = threading.Lock()
        self._open: list[tuple[socket.socket, socket.socket | None]] = []
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def set(self, mode: str) -> None:
        assert mode in ("pass", "refuse", "silent"), mode
        with self._lock:
            self.mode = mode
            held = list(self._open) if mode != "pass" else []
        for client, upstream in held:
            if upstream is not None:
                _close(upstream)  # Nothing more reaches the service, nor comes back from it.
            if mode == "refuse":
                _reset(client)

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            mode = self.mode
            if mode == "refuse":
                _reset(client)
                continue
            upstream = None
            if mode == "pass":
                try:
                    upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
                except OSError:
                    _reset(client)
                    continue
            with self._lock:
                self._open.append((client, upstream))
            threading.Thread(target=self._relay, args=(client, upstream), daemon=True).start()
            if upstream is not None:
                threading.Thread(target=self._back, args=(client, upstream), daemon=True).start()

    def _relay(self, client, upstream):
        try:
            while data := client.recv(65536):
                if self.mode == "pass" and upstream is not None:
                    upstream.sendall(data)
                # Silent: read and dropped, so the sender never blocks and never hears back.
        except OSError:
            pass
        finally:
            if upstream is not None:
                _close(upstream)

    def _back(self, client, upstream):
        try:
            while data := upstream.recv(65536):
                if self.mode != "pass":
                    return
                client.sendall(data)
            if self.mode == "pass":
                client.shutdown(socket.SHUT_WR)  # The service closed: so does the forwarder.
        except OSError:
            pass

    def close(self):
        self._closed = True
        self._listener.close()
        with self._lock:
            held, self._open = self._open, []
        for client, upstream in held:
            _close(client)
            if upstream is not None:
                _close(upstream)


def _close(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def _reset(sock):
    # SO_LINGER 0: close sends RST, as a port with nothing listening answers a new connection.
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    except OSError:
        pass
    sock.close()
