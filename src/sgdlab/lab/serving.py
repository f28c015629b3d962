"""The lab's server started beside training: uvicorn on a thread of its own, on a port of this machine.

It listens on 127.0.0.1 unless another host is asked for, on a free port
unless one is given, and its address carries a fresh random token (see
`sgdlab.lab.server`). Training stays on the main thread, where Ctrl-C
reaches it.
"""

import ipaddress
import secrets
import socket
import threading
import time

from ..errors import SgdlabError
from .server import LOCAL_HOSTS, create_app

START_TIMEOUT = 10.0  # seconds for the server to be listening
STOP_TIMEOUT = 5.0  # seconds for the open streams to end before the server cuts them off


class LabServer:
    """A running lab server for `lab`; a context manager that stops it on exit."""

    def __init__(self, lab, host="127.0.0.1", port=0):
        import uvicorn

        self.host, self.token = host, secrets.token_urlsafe(24)
        self.socket = _listening_socket(host, port)
        self.port = self.socket.getsockname()[1]
        everywhere = _is_wildcard(host)
        extra_hosts = ["*"] if everywhere else [] if host in LOCAL_HOSTS else [host]
        self.ending = threading.Event()
        app = create_app(lab, self.token, extra_hosts, self.ending)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=STOP_TIMEOUT)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True,
                                       name="sgdlab-lab-server")

    @property
    def is_local(self):
        return self.host in LOCAL_HOSTS

    @property
    def url(self):
        """The page's address, with the token that opens it."""
        shown = "127.0.0.1" if _is_wildcard(self.host) else self.host
        shown = f"[{shown}]" if ":" in shown and not shown.startswith("[") else shown
        return f"http://{shown}:{self.port}/?token={self.token}"

    def start(self):
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise SgdlabError(f"the lab page's server did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        return self

    def stop(self):
        self.ending.set()  # the streams end within a couple of seconds, and the server once they have
        self.server.should_exit = True
        self.thread.join(timeout=STOP_TIMEOUT + 1)
        self.socket.close()

    def wait(self, asked_to_end=lambda: False):
        """Until the server stops or `asked_to_end()` (asked a few times a second) is true."""
        while self.thread.is_alive() and not asked_to_end():
            self.thread.join(timeout=0.2)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


def _listening_socket(host, port):
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        fix = "give another --port, or leave it out for a free one" if port else "check --host"
        raise SgdlabError(f"cannot listen on {host}:{port} ({exc.strerror}): {fix}") from None
    sock.listen(128)
    return sock


def _is_wildcard(host):
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False
