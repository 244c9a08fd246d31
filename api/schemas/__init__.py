"""Pydantic models for everything that crosses the HTTP boundary (apart from the ORM models)."""
