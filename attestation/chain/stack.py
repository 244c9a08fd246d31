"""The Ethereum stack, imported once, with the interpreter's recursion limit put back.

`eth` (py-evm) and `py_ecc` raise `sys.setrecursionlimit` to 100,000 when they are first
imported (`web3` imports both). With that limit a deeply nested input no longer stops at a
`RecursionError`: the C stack overflows first and the process dies with SIGSEGV (one
unauthenticated request of `[[[[…` killed the server). The EVM needs the high limit only
for message calls nested hundreds deep; the anchor contract makes one precompile call.

Every module that uses web3, eth-tester or py-evm imports this module; it imports the
whole stack, so later imports of any part of it cannot raise the limit again (each sets
it only when first executed), and then restores CPython's default.
"""

from __future__ import annotations

import sys

import eth  # noqa: F401 - imported for its side effect, undone below
import eth_tester  # noqa: F401
import py_ecc  # noqa: F401
import web3  # noqa: F401

DEFAULT_RECURSION_LIMIT = 1000
"""CPython's default; deep enough for everything the registry runs, chain included."""


def restore_recursion_limit() -> None:
    """Put the limit back to the default (idempotent; cheap)."""
    if sys.getrecursionlimit() != DEFAULT_RECURSION_LIMIT:
        sys.setrecursionlimit(DEFAULT_RECURSION_LIMIT)


restore_recursion_limit()
