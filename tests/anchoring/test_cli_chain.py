"""`carbonledger chain deploy`, `anchor now|status` and `verify`, each run as a separate
process against a real anvil node, the way an operator and a verifier would run them.

The verifier's run reads no settings: it gets the bundle file, the RPC URL, the contract
address and the log's verifier key, and nothing else (its environment is emptied of
CARBONLEDGER_* variables).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from anvil_node_support import (
    ANVIL_ADMIN_KEY,
    ANVIL_CHAIN_ID,
    ANVIL_KEYS,
    AnvilNode,
    free_loopback_port,
)
from loaded_modules_support import loaded_modules, top_level
from metered_log_support import MeteredLog, metered_log

from attestation.bundles.build import build_bundle
from attestation.bundles.format import bundle_bytes

CLI = str(Path(sys.executable).with_name("carbonledger"))


def _run(args: list[str], env: dict[str, str], stdin: bytes | None = None) -> Any:
    return subprocess.run(
        [CLI, *args], env=env, capture_output=True, input=stdin, timeout=120, check=False
    )


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARBONLEDGER_")}
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "200"
    return env


def _operator_env(metered: MeteredLog, node: AnvilNode) -> dict[str, str]:
    return {
        **_clean_env(),
        "CARBONLEDGER_DATA_DIR": str(metered.settings.data_dir),
        "CARBONLEDGER_CHAIN_RPC": node.url,
        "CARBONLEDGER_CHAIN_ID": str(ANVIL_CHAIN_ID),
        "CARBONLEDGER_CHAIN_ANCHORER_KEY": ANVIL_KEYS[0],
    }


@dataclass(frozen=True)
class Deployed:
    node: AnvilNode
    bundle: Path
    contract: str
    log_key: str
    data_dir: Path


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    """One anvil and registry for the module (the tests only read the chain): deploy and
    anchor through the CLI, then write a real bundle of one reading."""
    root = tmp_path_factory.mktemp("cli-chain")
    node = AnvilNode(root / "anvil")
    node.start()
    try:
        with metered_log(root / "registry") as metered:
            yield _deploy_and_anchor(node, metered, root)
    finally:
        node.stop()


def _deploy_and_anchor(node: AnvilNode, metered: MeteredLog, root: Path) -> Deployed:
    env = _operator_env(metered, node)
    # The admin's cold key deploys and registers; the service's key only anchors.
    admin_env = {**env, "CARBONLEDGER_CHAIN_ADMIN_KEY": ANVIL_ADMIN_KEY}
    same_key = _run(["chain", "deploy"], {**env, "CARBONLEDGER_CHAIN_ADMIN_KEY": ANVIL_KEYS[0]})
    assert same_key.returncode == 2, same_key.stderr.decode()
    assert "the admin must not be the anchorer" in same_key.stderr.decode()
    no_admin = _run(["chain", "deploy"], env)
    assert no_admin.returncode == 2
    assert "CARBONLEDGER_CHAIN_ADMIN_KEY" in no_admin.stderr.decode()
    deployed = _run(["chain", "deploy", "--json"], admin_env)
    assert deployed.returncode == 0, deployed.stderr.decode()
    contract = json.loads(deployed.stdout)["contract"]

    unregistered = _run(["anchor", "now"], env)
    assert unregistered.returncode == 1, unregistered.stderr.decode()
    assert "chain register-log" in unregistered.stderr.decode()
    for admin_only in (["chain", "register-log"], ["chain", "rotate-anchorer", contract]):
        refused = _run(admin_only, env)  # the anchorer key alone cannot administer
        assert refused.returncode == 2 and "ADMIN_KEY" in refused.stderr.decode()
    registered = _run(["chain", "register-log", "--json"], admin_env)
    assert registered.returncode == 0, registered.stderr.decode()
    registration = json.loads(registered.stdout)
    assert registration["maxGrowth"] == 1 << 24
    origin = metered.registry.log.head().origin
    assert registration["logId"] == "0x" + hashlib.sha256(origin.encode()).hexdigest()

    anchored = _run(["anchor", "now", "--json"], env)
    assert anchored.returncode == 0, anchored.stderr.decode()
    record = json.loads(anchored.stdout)["anchored"]
    head = metered.registry.log.head()
    assert record["size"] == head.size and record["root"] == "0x" + head.root.hex()
    assert record["contract"] == contract and record["chainId"] == ANVIL_CHAIN_ID

    again = _run(["anchor", "now", "--json"], env)
    assert again.returncode == 0 and json.loads(again.stdout)["anchored"] is None

    status = _run(["anchor", "status", "--json"], env)
    assert status.returncode == 0, status.stderr.decode()
    state = json.loads(status.stdout)
    assert state["unanchored"] == 0 and state["chain"]["size"] == head.size
    assert state["latest"]["tx"] == record["tx"]

    bundle = build_bundle(metered.registry.log, metered.registry.signer, [metered.readings[1]])
    path = root / "bundle.json"
    path.write_bytes(bundle_bytes(bundle))
    return Deployed(
        node, path, contract, metered.registry.signer.verifier.encode(), metered.settings.data_dir
    )


def _verify(
    deployed: Deployed,
    *extra: str,
    bundle: Path | None = None,
    contract: str | None = None,
    key: str | None = None,
    rpc: str | None = None,
) -> subprocess.CompletedProcess[bytes]:
    args = [
        "verify",
        str(bundle or deployed.bundle),
        "--rpc",
        rpc or deployed.node.url,
        "--contract",
        contract or deployed.contract,
        "--chain-id",
        str(ANVIL_CHAIN_ID),
        "--log-key",
        key or deployed.log_key,
    ]
    result: subprocess.CompletedProcess[bytes] = _run([*args, *extra], _clean_env())
    return result


def test_verify_passes_for_a_real_bundle(deployed: Deployed) -> None:
    result = _verify(deployed)
    out = result.stdout.decode()
    assert result.returncode == 0, out + result.stderr.decode()
    for name in ("format", "log-id", "checkpoint", "keys", "contract", "chain"):
        assert any(
            line.startswith("PASS") and f" {name} " in f"{line} " for line in out.splitlines()
        ), (
            name,
            out,
        )
    assert "FAIL" not in out
    assert sum(line.startswith("PASS  inclusion[") for line in out.splitlines()) == 2
    assert out.strip().splitlines()[-1].startswith("verified: ")

    as_json = _verify(deployed, "--json")
    report = json.loads(as_json.stdout)
    assert as_json.returncode == 0 and report["ok"] and report["complete"]
    assert report["failed"] == []


def _tampered(bundle: Path, change: Any) -> Path:
    document = json.loads(bundle.read_bytes())
    change(document)
    path = bundle.with_name("tampered.json")
    path.write_text(json.dumps(document))
    return path


def _flip_base64(value: str) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[-1] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _flip_hex(value: str) -> str:
    return value[:-1] + ("0" if value[-1] != "0" else "1")


@pytest.mark.parametrize(
    ("what", "change", "failed_check"),
    [
        (
            "leaf byte",
            lambda d: d["entries"][1].update(leaf=_flip_base64(d["entries"][1]["leaf"])),
            "inclusion[",
        ),
        (
            "inclusion hash",
            lambda d: d["entries"][1]["inclusion"].__setitem__(
                0, _flip_base64(d["entries"][1]["inclusion"][0])
            ),
            "inclusion[",
        ),
        (
            "anchored root",
            lambda d: d["anchor"].update(root=_flip_hex(d["anchor"]["root"])),
            "chain",
        ),
        ("anchor tx", lambda d: d["anchor"].update(tx=_flip_hex(d["anchor"]["tx"])), "chain"),
        ("anchor block", lambda d: d["anchor"].update(block=d["anchor"]["block"] + 1), "chain"),
        (
            "checkpoint signature",
            lambda d: d.update(
                checkpoint=d["checkpoint"].replace(d["checkpoint"].split("\n")[-2][-6:], "AAAAA=")
            ),
            "checkpoint",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_verify_fails_naming_the_check_when_a_byte_changes(
    deployed: Deployed, what: str, change: Any, failed_check: str
) -> None:
    result = _verify(deployed, bundle=_tampered(deployed.bundle, change))
    out, err = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 1, (what, out, err)
    failed = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert any(f"  {failed_check}" in line for line in failed), (what, out)
    # One error line on stderr that names the failed checks.
    (error_line,) = err.strip().splitlines()
    assert error_line.startswith("error: verification failed: ") and failed_check in error_line


def test_verify_usage_and_unreachable_chain(deployed: Deployed) -> None:
    no_key = _run(["verify", str(deployed.bundle), "--rpc", deployed.node.url], _clean_env())
    assert no_key.returncode == 2 and "--log-key" in no_key.stderr.decode()
    bad_key = _verify(deployed, key="not-a-key")
    assert bad_key.returncode == 2 and "--log-key" in bad_key.stderr.decode()
    other_contract = _verify(deployed, contract="0x" + "12" * 20)
    assert other_contract.returncode == 1
    assert "verification failed: contract" in other_contract.stderr.decode()
    nobody = f"http://127.0.0.1:{free_loopback_port()}"
    down = _verify(deployed, rpc=nobody)
    assert down.returncode == 3, down.stderr.decode()
    assert down.stderr.decode().startswith(f"error: chain RPC {nobody} is unreachable")


def test_anchor_status_reads_the_chain_without_a_signing_key(deployed: Deployed) -> None:
    env = {
        **_clean_env(),
        "CARBONLEDGER_DATA_DIR": str(deployed.data_dir),
        "CARBONLEDGER_CHAIN_RPC": deployed.node.url,
    }
    status = _run(["anchor", "status", "--json"], env)
    assert status.returncode == 0, status.stderr.decode()
    state = json.loads(status.stdout)
    assert state["chainError"] is None
    assert state["chain"]["contract"] == deployed.contract
    assert state["chain"]["size"] == state["latest"]["size"] == state["logSize"]

    # A node that is not there is reported with what to check; the recorded state still shows.
    down = f"http://127.0.0.1:{free_loopback_port()}"
    missing = _run(["anchor", "status", "--json"], {**env, "CARBONLEDGER_CHAIN_RPC": down})
    assert missing.returncode == 0, missing.stderr.decode()
    state = json.loads(missing.stdout)
    assert state["chain"] is None and state["latest"]["size"] == state["logSize"]
    assert f"is the node running at {down}?" in state["chainError"]


def test_verify_says_how_to_fix_an_rpc_url(deployed: Deployed) -> None:
    bare = deployed.node.url.removeprefix("http://")
    result = _verify(deployed, rpc=bare)
    assert result.returncode == 2, result.stderr.decode()
    assert result.stderr.decode().strip() == (
        f"error: --rpc: {bare!r} has no scheme; add it: http://{bare}"
    )
    nobody = f"http://127.0.0.1:{free_loopback_port()}"
    down = _verify(deployed, rpc=nobody)
    assert down.returncode == 3
    assert f"is the node running at {nobody}?" in down.stderr.decode()
    assert "HTTPConnectionPool" not in down.stderr.decode()  # no transport library's text


def test_verify_with_rpc_loads_neither_web3_nor_the_storage_layer(deployed: Deployed) -> None:
    """The verifier's path: bundle parsing, the checks and three JSON-RPC requests."""
    modules, completed = loaded_modules(
        [
            "verify",
            str(deployed.bundle),
            "--rpc",
            deployed.node.url,
            "--contract",
            deployed.contract,
            "--chain-id",
            str(ANVIL_CHAIN_ID),
            "--log-key",
            deployed.log_key,
        ],
        _clean_env(),
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr[-3000:]
    loaded = top_level(modules)
    heavy = {
        "alembic",
        "eth_account",
        "eth_tester",
        "eth_typing",  # eth_utils' half-second import chain (attestation/chain/address.py)
        "eth_utils",
        "fastapi",
        "matplotlib",
        "pandas",
        "pydantic_settings",
        "requests",
        "sqlalchemy",
        "web3",
    }
    assert not loaded & heavy, sorted(loaded & heavy)


def test_operator_commands_say_what_to_check_about_the_rpc_url(deployed: Deployed) -> None:
    env = {
        **_clean_env(),
        "CARBONLEDGER_DATA_DIR": str(deployed.data_dir),
        "CARBONLEDGER_CHAIN_ANCHORER_KEY": ANVIL_KEYS[0],
    }
    nobody = f"http://127.0.0.1:{free_loopback_port()}"
    down = _run(["anchor", "now"], {**env, "CARBONLEDGER_CHAIN_RPC": nobody})
    assert down.returncode == 3, down.stderr.decode()
    (line,) = down.stderr.decode().strip().splitlines()
    assert line == (
        f"error: chain RPC {nobody} is unreachable (connection refused): "
        f"is the node running at {nobody}?"
    )
    bare = nobody.removeprefix("http://")
    no_scheme = _run(["chain", "deploy"], {**env, "CARBONLEDGER_CHAIN_RPC": bare})
    assert no_scheme.returncode == 2
    assert f"add it: http://{bare}" in no_scheme.stderr.decode()


def test_admin_rotates_the_anchorer_and_revokes_through_the_cli(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Issue 11 attack 9 end to end with the CLI: after `chain rotate-anchorer` the old
    (stolen) key's `anchor now` is refused before anything is sent; the new key anchors;
    `chain revoke-anchors` takes the newest anchor back and `anchor status` shows the size."""
    root = tmp_path_factory.mktemp("cli-rotate")
    node = AnvilNode(root / "anvil")
    node.start()
    try:
        with metered_log(root / "registry") as metered:
            env = _operator_env(metered, node)
            admin_env = {**env, "CARBONLEDGER_CHAIN_ADMIN_KEY": ANVIL_ADMIN_KEY}
            assert _run(["chain", "deploy"], admin_env).returncode == 0
            assert _run(["chain", "register-log"], admin_env).returncode == 0
            assert _run(["anchor", "now"], env).returncode == 0
            first = metered.registry.log.head().size

            new_env = {**env, "CARBONLEDGER_CHAIN_ANCHORER_KEY": ANVIL_KEYS[1]}
            new_address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # anvil account 1
            rotated = _run(["chain", "rotate-anchorer", new_address, "--json"], admin_env)
            assert rotated.returncode == 0, rotated.stderr.decode()
            assert json.loads(rotated.stdout)["anchorer"] == new_address

            metered.add_readings(2)
            stolen = _run(["anchor", "now"], env)
            assert stolen.returncode == 1, stolen.stderr.decode()
            assert f"names {new_address} as the anchorer" in stolen.stderr.decode()
            assert _run(["anchor", "now"], new_env).returncode == 0
            second = metered.registry.log.head().size
            assert second > first

            revoked = _run(
                ["chain", "revoke-anchors", "--keep-size", str(first), "--json"], admin_env
            )
            assert revoked.returncode == 0, revoked.stderr.decode()
            result = json.loads(revoked.stdout)
            assert (result["previousSize"], result["size"], result["revoked"]) == (second, first, 1)
            status = _run(
                ["anchor", "status", "--json"],
                _clean_env()
                | {
                    "CARBONLEDGER_DATA_DIR": env["CARBONLEDGER_DATA_DIR"],
                    "CARBONLEDGER_CHAIN_RPC": node.url,
                },
            )
            assert status.returncode == 0, status.stderr.decode()
            assert json.loads(status.stdout)["chain"]["size"] == first
            wrong = _run(["chain", "revoke-anchors", "--keep-size", str(first + 1)], admin_env)
            assert wrong.returncode == 1 and "NothingToRevoke" in wrong.stderr.decode()
    finally:
        node.stop()


def test_an_unpinned_input_is_never_success_and_a_wrong_pin_fails(
    deployed: Deployed, tmp_path: Path
) -> None:
    """A reseller or operator hoping the verifier forgets a pin: exit 4, never 0."""
    base = [str(deployed.bundle), "--rpc", deployed.node.url, "--log-key", deployed.log_key]
    no_pins = _run(["verify", *base], _clean_env())
    assert no_pins.returncode == 4, no_pins.stderr.decode()
    assert "verification incomplete: not made: chain-id, contract" in no_pins.stderr.decode()
    assert "verified:" not in no_pins.stdout.decode()

    other_chain = _verify(deployed, "--chain-id", "1")  # a later flag wins: chain 1 pinned
    assert other_chain.returncode == 1, other_chain.stderr.decode()
    assert "verification failed: chain-id" in other_chain.stderr.decode()

    # The operator's published trust file stands in for every flag.
    trust = tmp_path / "trust.json"
    trust.write_text(
        json.dumps(
            {
                "trust": "carbonledger/trust/1",
                "chainId": ANVIL_CHAIN_ID,
                "contract": deployed.contract,
                "logKey": deployed.log_key,
                "rpc": deployed.node.url,
            }
        )
    )
    trusted = _run(["verify", str(deployed.bundle), "--trust", str(trust)], _clean_env())
    assert trusted.returncode == 0, trusted.stdout.decode() + trusted.stderr.decode()
    assert "verified:" in trusted.stdout.decode()


def test_the_embedded_chain_only_when_accepted_and_said(deployed: Deployed) -> None:
    env = {**_clean_env(), "CARBONLEDGER_DATA_DIR": str(deployed.data_dir)}
    refused = _run(["verify", str(deployed.bundle)], env)
    assert refused.returncode == 2
    assert "--accept-embedded-chain" in refused.stderr.decode()
    assert "proves nothing to an outsider" in refused.stderr.decode()
