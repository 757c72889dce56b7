"""Django's PostgreSQL backend with a bound on every wait for the server, not only the connect.

libpq's `connect_timeout` bounds a new connection and the server's `statement_timeout` a query
the server is running; neither ends a wait on a server that has stopped answering (a frozen host,
a proxy that holds the connection): the kernel acknowledges what is sent and keepalives are
answered, so the client would wait forever. Each wait here ends after DATABASE_READ_TIMEOUT
seconds with an OperationalError (a request answers 503 database_unavailable), and the connection,
whose protocol state is then unknown, is closed so it is never used again.
"""

import types

import psycopg
from django.db.backends.postgresql import base
from psycopg import errors

_READ_TIMEOUT = "read_timeout"  # Ours, not libpq's: taken out of the connection parameters.


class ServerSilentError(errors.OperationalError):
    """The server sent nothing for DATABASE_READ_TIMEOUT seconds."""


class BoundedConnection(psycopg.Connection):
    read_timeout: float | None = None

    def wait(self, gen, interval=0.1, timeout=None):
        if timeout is None:
            timeout = self.read_timeout
        try:
            return super().wait(gen, interval=interval, timeout=timeout)
        except errors._WaitTimeout:
            self.close()
            raise ServerSilentError(f"no answer from the database within {timeout:g} s") from None


# psycopg, except that it connects with BoundedConnection: Django maps errors by their names on it.
_psycopg = types.ModuleType("psycopg")
_psycopg.__dict__.update(psycopg.__dict__)
_psycopg.connect = BoundedConnection.connect


class DatabaseWrapper(base.DatabaseWrapper):
    Database = _psycopg

    def get_connection_params(self):
        params = super().get_connection_params()
        self._read_timeout = params.pop(_READ_TIMEOUT, None) or None
        return params

    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        connection.read_timeout = self._read_timeout
        return connection
