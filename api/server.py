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
