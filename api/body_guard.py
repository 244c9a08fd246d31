"""Request bodies are bounded before anything parses them: size, and JSON nesting depth.

One request of ~200 KB of `[[[[…` used to kill the server: FastAPI decodes a JSON body
with `json.loads`, which recurses once per level, before any dependency (authentication
included) runs. This ASGI middleware sits in front of the whole application:

- a body over the route's byte limit is refused with 413 `payload-too-large`, by
  Content-Length before the application runs, else while it streams in;
- a body FastAPI would decode as JSON (no content type, `application/json` or any
  `application/*+json`, the same rule as FastAPI's) is read whole (it is within the byte
  limit) and scanned by `ledger.strict_json.nesting_exceeds`; deeper than
  `MAX_JSON_DEPTH` is 400 `json-too-deep`, and the application never sees it. Otherwise
  the buffered body is handed on unchanged.

Both answers are problem documents (Starlette's own limiter answers in plain text).
"""

from __future__ import annotations

from collections.abc import Mapping
from email.message import Message as MimeMessage

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import JSON_TOO_DEEP, PayloadTooLargeError, ProblemError, problem_response
from ledger.strict_json import MAX_JSON_DEPTH, nesting_exceeds


def decoded_as_json(content_type: str | None) -> bool:
    """Whether FastAPI parses a body with this Content-Type as JSON (fastapi.routing)."""
    if not content_type:
        return True
    message = MimeMessage()
    message["content-type"] = content_type
    if message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    return subtype == "json" or subtype.endswith("+json")


class RequestBodyGuard:
    """413 over the byte limit, 400 for JSON nested deeper than `max_depth`."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        path_limits: Mapping[str, int] | None = None,
        max_depth: int = MAX_JSON_DEPTH,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = dict(path_limits or {})
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.path_limits.get(scope["path"], self.max_bytes)
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            # Refused before the application sees the request, so nothing can change.
            await self._refuse(PayloadTooLargeError(max_bytes), scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD", "OPTIONS") or not decoded_as_json(
            headers.get("content-type")
        ):
            await self.app(scope, self._counting(receive, max_bytes), send)
            return
        try:
            body, disconnected = await self._read_body(receive, max_bytes)
        except PayloadTooLargeError as error:
            await self._refuse(error, scope, receive, send)
            return
        if nesting_exceeds(body, self.max_depth):
            too_deep = ProblemError(
                JSON_TOO_DEEP,
                f"the JSON body nests arrays and objects more than {self.max_depth} deep",
            )
            await self._refuse(too_deep, scope, receive, send)
            return
        await self.app(scope, self._replay(body, disconnected, receive), send)

    @staticmethod
    async def _read_body(receive: Receive, max_bytes: int) -> tuple[bytes, bool]:
        """The whole body (at most `max_bytes`), and whether the client went away."""
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"".join(chunks), True
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > max_bytes:
                raise PayloadTooLargeError(max_bytes)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), False

    @staticmethod
    def _replay(body: bytes, disconnected: bool, receive: Receive) -> Receive:
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent and not disconnected:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            if not sent:
                sent = True
                return {"type": "http.disconnect"}
            # After the body, the application only listens for the client going away.
            return await receive()

        return replay

    @staticmethod
    def _counting(receive: Receive, max_bytes: int) -> Receive:
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    # An HTTPException: FastAPI re-raises it from body parsing and the
                    # problem handlers turn it into the 413 document.
                    raise PayloadTooLargeError(max_bytes)
            return message

        return limited_receive

    @staticmethod
    async def _refuse(error: ProblemError, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            error.kind,
            error.problem_detail,
            instance=Request(scope).url.path,
            headers=error.headers,
        )
        await response(scope, receive, send)
