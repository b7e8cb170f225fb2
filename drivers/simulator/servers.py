"""Serve a simulated device on a pseudo-terminal or a TCP port.

* :class:`PtyServer`: ``os.openpty()``, slave set raw before any traffic, the engine serves the
  master; clients open :attr:`PtyServer.path` with pyserial like a real port. The host's line rate
  is read from the pty's termios, so a host at the wrong baud sees garbage as on a real line.
* :class:`TcpServer`: listens on ``host:port`` (port 0 = ephemeral); clients use
  ``socket://host:port``. One client at a time.

Both run a serving thread (:meth:`start` / :meth:`stop`, or use them as context managers).
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import threading
import time

from ramanid.drivers.simulator.engine import SimEngine

_POLL_S = 0.05


def _termios_speeds() -> dict[int, int]:
    import termios

    out = {}
    for name in dir(termios):
        if name.startswith("B") and name[1:].isdigit():
            out[getattr(termios, name)] = int(name[1:])
    return out


class _Server:
    def __init__(self, engine: SimEngine) -> None:
        self.engine = engine
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self):
        """Start serving in a daemon thread."""
        self._thread = threading.Thread(target=self._run_safe, name=type(self).__name__,
                                        daemon=True)
        self._thread.start()
        return self

    def _run_safe(self) -> None:
        try:
            self._run()
        except BaseException as exc:
            self.error = exc

    def _run(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def stop(self) -> None:
        """Stop serving and release the endpoint."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._close()

    def _close(self) -> None:  # pragma: no cover - overridden
        pass

    def wait(self) -> None:
        """Block until stopped (Ctrl-C raises KeyboardInterrupt in the caller)."""
        while not self._stop.is_set() and self._thread is not None and self._thread.is_alive():
            time.sleep(0.2)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _timeout(self) -> float:
        nxt = self.engine.next_due()
        if nxt is None:
            return _POLL_S
        return min(_POLL_S, max(0.0, nxt - time.monotonic()))


class PtyServer(_Server):
    """Simulated device on a pseudo-terminal."""

    def __init__(self, engine: SimEngine) -> None:
        import tty

        super().__init__(engine)
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self._speeds = _termios_speeds()
        self._pending = b""

    def _host_baud(self) -> int | None:
        import termios

        try:
            speed = termios.tcgetattr(self.slave)[5]
        except termios.error:
            return None
        return self._speeds.get(speed)

    def _run(self) -> None:
        eng = self.engine
        while not self._stop.is_set():
            r, _, _ = select.select([self.master], [], [], self._timeout())
            eng.host_baud = self._host_baud()
            if r:
                try:
                    data = os.read(self.master, 4096)
                except OSError as exc:
                    if exc.errno in (errno.EAGAIN, errno.EIO):
                        data = b""
                        time.sleep(0.005)
                    else:
                        raise
                eng.receive(data)
            self._pending += eng.read()
            if self._pending:
                try:
                    n = os.write(self.master, self._pending)
                    self._pending = self._pending[n:]
                except BlockingIOError:
                    pass
            if eng.disconnected:
                self._hang_up()
                return

    def _hang_up(self) -> None:
        """Simulate the line going away: close both ends so the client's reads fail."""
        self._close()

    def _close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.master = self.slave = -1


class TcpServer(_Server):
    """Simulated device on a TCP port (``socket://host:port``)."""

    def __init__(self, engine: SimEngine, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(engine)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(1)
        self.sock.settimeout(_POLL_S)
        self.host, self.port = self.sock.getsockname()[:2]

    @property
    def url(self) -> str:
        """The pyserial URL to connect to."""
        return f"socket://{self.host}:{self.port}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._serve(conn)
            self.engine.disconnected = False

    def _serve(self, conn: socket.socket) -> None:
        eng = self.engine
        conn.settimeout(2.0)
        while not self._stop.is_set():
            r, _, _ = select.select([conn], [], [], self._timeout())
            if r:
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                if not data:
                    return  # client closed
                eng.receive(data)
            out = eng.read()
            if out:
                try:
                    conn.sendall(out)
                except OSError:
                    return
            if eng.disconnected:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                return

    def _close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
