"""Open the configured chain: the embedded one, or a JSON-RPC endpoint with its key."""

from __future__ import annotations

from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3

from attestation.chain.client import ChainBackend, ChainSettings
from attestation.chain.embedded import Chain, open_embedded_chain
from attestation.chain.errors import ChainError


def open_rpc_chain(
    url: str, private_key: str | bytes, *, expected_chain_id: int | None = None, timeout: float = 30
) -> Chain:
    """A JSON-RPC endpoint; raises ChainError when unreachable or on another chain."""
    w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": timeout}))
    try:
        chain_id = int(w3.eth.chain_id)
    except Exception as exc:  # requests and web3 raise many types for "no node there"
        raise ChainError(f"chain RPC {url} is unreachable: {exc}") from exc
    if expected_chain_id is not None and chain_id != expected_chain_id:
        raise ChainError(
            f"chain RPC {url} serves chain id {chain_id}; CARBONLEDGER_CHAIN_ID is "
            f"{expected_chain_id}"
        )
    account: LocalAccount = Account.from_key(private_key)
    return Chain(w3, ChainBackend.JSON_RPC, chain_id, [account])


def open_chain(settings: ChainSettings, data_dir: Path) -> Chain:
    if settings.backend is ChainBackend.EMBEDDED:
        return open_embedded_chain(data_dir)
    assert settings.chain_rpc is not None
    if settings.chain_anchorer_key is None:
        raise ChainError("CARBONLEDGER_CHAIN_ANCHORER_KEY is required with CARBONLEDGER_CHAIN_RPC")
    return open_rpc_chain(
        settings.chain_rpc,
        settings.chain_anchorer_key.get_secret_value(),
        expected_chain_id=settings.chain_id,
    )
