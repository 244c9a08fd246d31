"""Which CarbonAnchor contract a registry anchors to, per chain.

`carbonledger chain deploy` records each deployment in `DATA_DIR/chain/contracts.json`,
keyed by chain id, so later commands and `serve` find it without configuration.
`CARBONLEDGER_CHAIN_CONTRACT` overrides the record. On the embedded chain a missing
contract is deployed on first use (its deployment is journaled like every transaction,
so it has the same address after a restart); on a JSON-RPC chain it never is implicitly,
since that spends real fees and the address must be published to verifiers.

Contract v2 has an admin separate from the anchorer (decision 70). On a JSON-RPC chain the
admin is the cold key `CARBONLEDGER_CHAIN_ADMIN_KEY` (or an address given to `chain deploy
--admin`), and a log is registered only by `carbonledger chain register-log`. The embedded
chain proves nothing to an outsider anyway (its keys are eth-tester's well-known ones), so
there its second account is the admin and the registry's log is registered on first use.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from attestation.chain.client import CarbonAnchor, Chain, ChainBackend, ChainSettings
from attestation.chain.errors import ChainError

DEPLOYMENTS_NAME = "contracts.json"


@dataclass(frozen=True, slots=True)
class Deployment:
    chain_id: int
    address: str
    tx: str
    block: int
    deployed_at: str


def deployments_path(data_dir: Path) -> Path:
    return data_dir / "chain" / DEPLOYMENTS_NAME


def recorded_deployments(data_dir: Path) -> dict[int, Deployment]:
    path = deployments_path(data_dir)
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {int(key): Deployment(**value) for key, value in raw.items()}
    except (ValueError, TypeError) as exc:
        raise ChainError(f"{path} is damaged: {exc}") from exc


def record_deployment(data_dir: Path, deployment: Deployment) -> Path:
    """Add (or replace) the contract of one chain; written atomically."""
    records = recorded_deployments(data_dir)
    records[deployment.chain_id] = deployment
    path = deployments_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({str(k): asdict(v) for k, v in sorted(records.items())}, indent=2) + "\n"
    # A crash mid-write must not lose the addresses of earlier deployments.
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, delete=False, suffix=".tmp"
    ) as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    Path(handle.name).replace(path)
    return path


class LogNotRegisteredError(ChainError):
    """The contract has no registration for this log, so it would refuse every anchor."""


def embedded_admin(chain: Chain) -> LocalAccount:
    """The embedded chain's admin: eth-tester's second account (the first one anchors)."""
    if chain.backend is not ChainBackend.EMBEDDED:
        raise ChainError("only the embedded chain has a built-in admin account")
    return chain.accounts[1]


def ensure_log_registered(contract: CarbonAnchor, log_id: bytes) -> None:
    """Raise LogNotRegisteredError unless the log is registered; on the embedded chain,
    register it (its admin is built in) for the chain's default account."""
    if contract.log_config(log_id).registered:
        return
    if contract.chain.backend is ChainBackend.EMBEDDED:
        admin = embedded_admin(contract.chain)
        contract.register_log(log_id, contract.chain.account.address, admin=admin)
        return
    raise LogNotRegisteredError(
        f"log 0x{log_id.hex()} is not registered on contract {contract.address}: run "
        "`carbonledger chain register-log` with CARBONLEDGER_CHAIN_ADMIN_KEY"
    )


def deploy_and_record(
    chain: Chain, data_dir: Path, *, admin: str | None = None, signer: LocalAccount | None = None
) -> Deployment:
    """Deploy, then record the address. `admin` defaults to the embedded chain's own admin;
    on a JSON-RPC chain it must be given (the address of the cold admin key)."""
    if admin is None:
        if chain.backend is not ChainBackend.EMBEDDED:
            raise ChainError(
                "deploying on a JSON-RPC chain needs the admin: set CARBONLEDGER_CHAIN_ADMIN_KEY "
                "or give --admin ADDRESS"
            )
        admin = embedded_admin(chain).address
    contract, sent = CarbonAnchor.deploy(chain, admin=admin, signer=signer)
    deployment = Deployment(
        chain_id=chain.chain_id,
        address=contract.address,
        tx="0x" + sent.tx_hash.hex(),
        block=sent.block,
        deployed_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    record_deployment(data_dir, deployment)
    return deployment


def resolve_contract(
    chain: Chain, settings: ChainSettings, data_dir: Path, *, deploy_embedded: bool = True
) -> CarbonAnchor:
    """The configured or recorded contract on this chain (deployed first when embedded)."""
    address: str
    if settings.chain_contract:
        address = to_checksum_address(settings.chain_contract)
    else:
        recorded = recorded_deployments(data_dir).get(chain.chain_id)
        if recorded is not None:
            address = recorded.address
        elif chain.backend is ChainBackend.EMBEDDED and deploy_embedded:
            address = deploy_and_record(chain, data_dir).address
        else:
            raise ChainError(
                f"no CarbonAnchor contract is known on chain {chain.chain_id}; run "
                "`carbonledger chain deploy` or set CARBONLEDGER_CHAIN_CONTRACT"
            )
    if not chain.w3.eth.get_code(to_checksum_address(address)):
        raise ChainError(f"there is no contract at {address} on chain {chain.chain_id}")
    return CarbonAnchor(chain, address)
