"""The chain's error base class, in a module of its own.

`attestation.chain.client` (web3, eth-tester) and the light JSON-RPC reader of
`attestation.chain.rpc` both raise it; the offline verifier catches it without loading
either web3 or the embedded chain.
"""

from __future__ import annotations


class ChainError(RuntimeError):
    """The chain could not be used: unreachable, wrong chain id, bad journal, bad config."""
