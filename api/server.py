"""Running the API under uvicorn, with one line that says when and where it is ready.

Uvicorn's own start-up lines are log records among others; someone who typed `make run`
wants one unmistakable line once the socket accepts connections, with the URL to open
(the real port, also when the OS chose it) and what the anchoring scheduler will do.
It is printed after the lifespan started (database migrated, anchoring running) and the
socket is bound, never before.
"""

from __future__ import annotations

import socket
import sys

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from api.app import create_app
from api.settings import ApiSettings
from attestation.anchoring.scheduler import AnchorService
from attestation.chain.client import ChainBackend

READY_PREFIX = "carbonledger is ready at "
STARTUP_FAILURE = 3  # uvicorn's own exit status when the app or the socket cannot start


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def anchoring_summary(service: AnchorService | None) -> str:
    """What the scheduler of this process does, in a few words."""
    if service is None:
        return "anchoring off (CARBONLEDGER_ANCHOR_ENABLED, or a JSON-RPC chain without a schedule)"
    backend = service.chain_settings.backend
    interval = service.settings.interval(backend).total_seconds()
    where = "the embedded chain" if backend is ChainBackend.EMBEDDED else "the JSON-RPC chain"
    return (
        f"anchoring on {where} every {interval:g} s or "
        f"{service.settings.anchor_every_entries:,} entries, when something is new"
    )


def ready_line(app: FastAPI, host: str, port: int) -> str:
    url = _url(host, port)
    anchoring: AnchorService | None = getattr(app.state, "anchoring", None)
    return (
        f"{READY_PREFIX}{url} (API docs {url}/docs); {anchoring_summary(anchoring)}; "
        "Ctrl-C stops it"
    )


class _ReadyServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if not self.started:  # start-up failed; uvicorn reports why and exits
            return
        bound = self.servers[0].sockets[0].getsockname()
        print(ready_line(self._app, self.config.host, int(bound[1])), flush=True)


PRIMARY_LOCK_NAME = "serve-primary.lock"
"""In DATA_DIR: held by the one worker of `serve --workers N` that runs the background services."""


def worker_app() -> FastAPI:
    """The app of one `serve --workers N` process (a uvicorn factory; settings from the
    environment the parent prepared in `run_workers`)."""
    settings = ApiSettings()

    def announce(app: FastAPI) -> None:
        # The workers share the parent's listening socket, so it accepts connections already.
        print(ready_line(app, settings.host, settings.port), flush=True)

    return create_app(
        settings, primary_lock=settings.data_dir / PRIMARY_LOCK_NAME, on_ready=announce
    )


def run_workers(host: str, port: int, workers: int) -> None:
    """Serve with `workers` processes sharing one socket; anchoring runs in exactly one."""
    config = uvicorn.Config(
        "api.server:worker_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        server_header=False,
    )
    _run_multiprocess(config)


class _Supervisor(Multiprocess):
    """uvicorn's supervisor, remembering whether a signal or a failed worker stopped it."""

    signalled = False

    def handle_int(self) -> None:
        self.signalled = True
        super().handle_int()

    def handle_term(self) -> None:
        self.signalled = True
        super().handle_term()


def _run_multiprocess(config: uvicorn.Config) -> None:
    sock = config.bind_socket()
    supervisor = _Supervisor(config, sockets=[sock])
    supervisor.run()
    # It stops on its own only when a worker could not start (it says why on stderr).
    if not supervisor.signalled:
        sys.exit(STARTUP_FAILURE)


def run_server(app: FastAPI, host: str, port: int) -> None:
    """Serve `app` until interrupted (what `carbonledger serve` runs)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        server_header=False,  # no need to advertise the server software
    )
    server = _ReadyServer(config, app)
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
