"""The outside interfaces: the FastAPI application and the `carbonledger` CLI."""
