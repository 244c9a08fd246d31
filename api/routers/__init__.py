"""One router per resource; `api.app.create_app` includes them all."""

from api.routers import auth, health, log

__all__ = ["auth", "health", "log"]
