"""A TCP forwarder the test owns, to make an outage of one service for the processes pointed at it
without touching the machine's shared service: refused (nothing listens, open connections cut)."""

import socket
import threading


class TcpForwarder:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`upstream_port`. `refuse()` stops listening and cuts
    every open connection, so clients see their connection lost and new ones refused, as when the
    service goes down; `restore()` listens again on the same port."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._listener = None
        self.port = 0
        self.restore()

    @property
    def refused(self) -> bool:
        return self._listener is None

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def refuse(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            _cut(listener)  # shutdown() first: a close() alone leaves it listening while accept() waits on it.
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            _cut(conn)

    close = refuse

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # Closed by refuse().
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                _cut(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # Refused meanwhile.
                    _cut(client), _cut(upstream)
                    return
                self._conns |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with self._lock:
                    self._conns.discard(sock)
                _cut(sock)


def _cut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
