"""Liveness and readiness probes (for container orchestrators and load balancers)."""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from api.deps import RegistryDep
from api.problems import NOT_READY, ProblemError, problem_responses

router = APIRouter(tags=["health"])
logger = logging.getLogger(__name__)


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ready"] = "ready"
    size: int


@router.get("/healthz", summary="Liveness: the process answers (no database access)")
async def liveness() -> Liveness:
    return Liveness()


@router.get(
    "/readyz",
    summary="Readiness: the database answers and the log is initialised",
    responses=problem_responses(NOT_READY),
)
def readiness(registry: RegistryDep) -> Readiness:
    try:
        head = registry.log.head()
    except SQLAlchemyError as exc:
        # The cause goes to the log, not to the (unauthenticated) caller.
        logger.warning("readiness check failed: %s", exc)
        raise ProblemError(NOT_READY, "the database cannot be reached") from exc
    return Readiness(size=head.size)
