"""`carbonledger log verify-inclusion` / `verify-consistency`: offline checks of proof JSON.

Proofs and checkpoints come from a real log through the library (not through the CLI),
so these tests hold even if `log prove` were wrong. Every run gets an environment whose
settings are unusable (no data directory, an unreachable database, an invalid port): the
verify commands must not read settings or touch a database at all.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_helpers import (
    assert_one_line_error,
    check_lines,
    flip_base64,
    isolated_env,
    mutate,
    run,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api.cli.log import MAX_PROOF_BYTES
from api.schemas.log import ConsistencyProofBody, InclusionProofBody
from ledger.log.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from ledger.log.merkle import leaf_hash
from ledger.registry import Registry, initialise_registry
from ledger.settings import LedgerSettings

SIZE = 13
"""Not a power of two, so proofs mix left and right siblings and a partial right edge."""

NO_SETTINGS = isolated_env(
    data_dir="/nonexistent/carbonledger",
    database_url="postgresql://nobody:secret@127.0.0.1:1/none",
    port="not-a-port",
)


@dataclass(frozen=True)
class Material:
    leaves: list[bytes]
    checkpoints: dict[int, str]  # signed note per tree size
    verifier_key: str
    registry: Registry

    def inclusion(self, index: int, size: int = SIZE) -> str:
        proof = self.registry.log.inclusion_proof(index, size)
        return InclusionProofBody.from_proof(proof).model_dump_json(by_alias=True)

    def consistency(self, size1: int, size2: int = SIZE) -> str:
        proof = self.registry.log.consistency_proof(size1, size2)
        return ConsistencyProofBody.from_proof(proof).model_dump_json(by_alias=True)


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Material]:
    data_dir = tmp_path_factory.mktemp("verify")
    registry = initialise_registry(LedgerSettings(data_dir=data_dir))
    try:
        registry.log.append({"kind": "test.cli/1", "n": n} for n in range(SIZE))
        checkpoints = {
            size: registry.log.checkpoint(registry.signer, size) for size in range(1, SIZE + 1)
        }
        yield Material(
            leaves=registry.log.entries(0, SIZE),
            checkpoints=checkpoints,
            verifier_key=registry.signer.verifier.encode(),
            registry=registry,
        )
    finally:
        registry.close()


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def root_of(proof_json: str, field: str = "rootHash") -> str:
    value = json.loads(proof_json)[field]
    assert isinstance(value, str)
    return value


# ------------------------------------------------------------------ inclusion: pass


@pytest.mark.parametrize(("index", "size"), [(0, 1), (0, SIZE), (5, 8), (12, SIZE), (7, 11)])
def test_inclusion_proof_from_stdin_verifies(material: Material, index: int, size: int) -> None:
    result = run(
        ["log", "verify-inclusion", "-"], NO_SETTINGS, input=material.inclusion(index, size)
    )
    assert result.exit_code == 0, result.output
    assert check_lines(result) == {"inclusion": "PASS"}
    # Without a trusted root the user is told that nothing anchors the proof.
    assert "no trusted root" in result.stderr


def test_inclusion_proof_verifies_against_leaf_and_signed_checkpoint(
    material: Material, tmp_path: Path
) -> None:
    proof = write(tmp_path / "proof.json", material.inclusion(6, 9))
    leaf = write(tmp_path / "leaf", material.leaves[6])
    note = write(tmp_path / "checkpoint", material.checkpoints[9])
    result = run(
        [
            "log",
            "verify-inclusion",
            str(proof),
            "--leaf-file",
            str(leaf),
            "--checkpoint",
            str(note),
            "--key",
            material.verifier_key,
        ],
        NO_SETTINGS,
    )
    assert result.exit_code == 0, result.output
    assert check_lines(result) == {
        "leaf": "PASS",
        "inclusion": "PASS",
        "checkpoint": "PASS",
        "trusted root": "PASS",
    }
    assert result.stderr == ""


@pytest.mark.parametrize("encoding", ["base64", "hex"])
def test_inclusion_proof_verifies_against_a_given_root(material: Material, encoding: str) -> None:
    proof = material.inclusion(3)
    root = root_of(proof)
    if encoding == "hex":
        root = "0x" + base64.b64decode(root).hex()  # as read from the anchor contract
    result = run(["log", "verify-inclusion", "--root", root], NO_SETTINGS, input=proof)
    assert result.exit_code == 0, result.output
    assert check_lines(result) == {"inclusion": "PASS", "trusted root": "PASS"}


# ------------------------------------------------------------------ inclusion: fail


def _tamper_inclusion(proof: str, how: str) -> str:
    body = json.loads(proof)
    if how == "proof hash byte":
        body["proof"][1] = flip_base64(body["proof"][1], byte=17)
    elif how == "leaf hash byte":
        body["leafHash"] = flip_base64(body["leafHash"], byte=31)
    elif how == "root hash byte":
        body["rootHash"] = flip_base64(body["rootHash"])
    elif how == "smaller size":
        body["size"] = 8  # index 5 needs 3 hashes in a tree of 8, not 4
    elif how == "index":
        body["index"] += 1
    elif how == "dropped hash":
        body["proof"].pop()
    elif how == "short hash":
        body["proof"][0] = base64.b64encode(base64.b64decode(body["proof"][0])[:31]).decode()
    elif how == "index outside":
        body["index"] = body["size"]
    return json.dumps(body)


@pytest.mark.parametrize(
    "how",
    [
        "proof hash byte",
        "leaf hash byte",
        "root hash byte",
        "smaller size",
        "index",
        "dropped hash",
        "short hash",
        "index outside",
    ],
)
def test_tampered_inclusion_proof_fails_naming_the_check(material: Material, how: str) -> None:
    tampered = _tamper_inclusion(material.inclusion(5), how)
    result = run(["log", "verify-inclusion"], NO_SETTINGS, input=tampered)
    assert_one_line_error(result, 1, "verification failed", "inclusion")
    assert check_lines(result) == {"inclusion": "FAIL"}


@pytest.mark.parametrize("claimed_size", [SIZE - 1, SIZE + 1, SIZE + 3])
def test_changed_size_fails_against_the_checkpoint_of_the_true_size(
    material: Material, tmp_path: Path, claimed_size: int
) -> None:
    # An RFC 9162 path depends on the size only through its shape, so for some sizes the
    # changed proof still agrees with its own root; the signed checkpoint binds the size.
    tampered = mutate(material.inclusion(3), size=claimed_size)
    note = write(tmp_path / "checkpoint", material.checkpoints[SIZE])
    result = run(
        ["log", "verify-inclusion", "--checkpoint", str(note), "--key", material.verifier_key],
        NO_SETTINGS,
        input=tampered,
    )
    assert result.exit_code == 1
    verdicts = check_lines(result)
    assert verdicts["trusted root"] == "FAIL"
    assert verdicts["checkpoint"] == "PASS"
    assert f"is for size {SIZE} but the proof is for size {claimed_size}" in result.stdout


def test_leaf_file_that_is_not_the_leaf_fails(material: Material, tmp_path: Path) -> None:
    leaf = write(tmp_path / "leaf", material.leaves[4])
    result = run(
        ["log", "verify-inclusion", "--leaf-file", str(leaf)],
        NO_SETTINGS,
        input=material.inclusion(5),
    )
    assert_one_line_error(result, 1, "verification failed: leaf")
    assert check_lines(result) == {"leaf": "FAIL", "inclusion": "PASS"}
    assert leaf_hash(material.leaves[4]).hex() in result.stdout


def test_root_that_differs_from_the_trusted_root_fails(material: Material) -> None:
    proof = material.inclusion(2)
    other_root = root_of(material.inclusion(2, SIZE - 1))
    result = run(["log", "verify-inclusion", "--root", other_root], NO_SETTINGS, input=proof)
    assert_one_line_error(result, 1, "verification failed: trusted root")
    assert check_lines(result) == {"inclusion": "PASS", "trusted root": "FAIL"}


def test_checkpoint_signed_by_another_key_fails_and_skips_the_root(
    material: Material, tmp_path: Path
) -> None:
    impostor = NoteSigner(material.registry.signer.name, Ed25519PrivateKey.generate())
    head = material.registry.log.head()
    note = write(
        tmp_path / "checkpoint", sign_checkpoint(Checkpoint(head.origin, SIZE, head.root), impostor)
    )
    result = run(
        ["log", "verify-inclusion", "--checkpoint", str(note), "--key", material.verifier_key],
        NO_SETTINGS,
        input=material.inclusion(1),
    )
    assert_one_line_error(result, 1, "verification failed: checkpoint")
    assert check_lines(result) == {
        "inclusion": "PASS",
        "checkpoint": "FAIL",
        "trusted root": "SKIP",
    }


def test_checkpoint_with_an_edited_root_line_fails(material: Material, tmp_path: Path) -> None:
    original = material.checkpoints[SIZE]
    root_line = original.split("\n")[2]
    forged = original.replace(root_line, flip_base64(root_line))
    note = write(tmp_path / "checkpoint", forged)
    result = run(
        ["log", "verify-inclusion", "--checkpoint", str(note), "--key", material.verifier_key],
        NO_SETTINGS,
        input=material.inclusion(1),
    )
    assert result.exit_code == 1
    assert check_lines(result)["checkpoint"] == "FAIL"
    assert "does not verify" in result.stdout


# ---------------------------------------------------------------------- consistency


@pytest.mark.parametrize(("size1", "size2"), [(1, 1), (1, SIZE), (4, 8), (5, SIZE), (SIZE, SIZE)])
def test_consistency_proof_verifies_with_both_checkpoints(
    material: Material, tmp_path: Path, size1: int, size2: int
) -> None:
    old = write(tmp_path / "old", material.checkpoints[size1])
    new = write(tmp_path / "new", material.checkpoints[size2])
    result = run(
        [
            "log",
            "verify-consistency",
            "--old-checkpoint",
            str(old),
            "--new-checkpoint",
            str(new),
            "--key",
            material.verifier_key,
        ],
        NO_SETTINGS,
        input=material.consistency(size1, size2),
    )
    assert result.exit_code == 0, result.output
    assert check_lines(result) == {
        "consistency": "PASS",
        "old checkpoint": "PASS",
        "trusted old root": "PASS",
        "new checkpoint": "PASS",
        "trusted new root": "PASS",
    }


def test_consistency_proof_verifies_against_given_roots(material: Material, tmp_path: Path) -> None:
    proof = material.consistency(6)
    path = write(tmp_path / "proof.json", proof)
    result = run(
        [
            "log",
            "verify-consistency",
            str(path),
            "--old-root",
            root_of(proof, "oldRootHash"),
            "--new-root",
            root_of(proof, "newRootHash"),
        ],
        NO_SETTINGS,
    )
    assert result.exit_code == 0, result.output
    assert check_lines(result) == {
        "consistency": "PASS",
        "trusted old root": "PASS",
        "trusted new root": "PASS",
    }


def _tamper_consistency(proof: str, how: str) -> str:
    body = json.loads(proof)
    if how == "proof hash byte":
        body["proof"][0] = flip_base64(body["proof"][0], byte=9)
    elif how == "old root byte":
        body["oldRootHash"] = flip_base64(body["oldRootHash"])
    elif how == "new root byte":
        body["newRootHash"] = flip_base64(body["newRootHash"], byte=31)
    elif how == "from size":
        body["from"] += 1
    elif how == "to size":
        body["to"] = 8  # from 5 to 8 needs 3 hashes, from 5 to 13 needs 4
    elif how == "extra hash":
        body["proof"].append(body["proof"][0])
    elif how == "from after to":
        body["from"] = body["to"] + 1
    return json.dumps(body)


@pytest.mark.parametrize(
    "how",
    [
        "proof hash byte",
        "old root byte",
        "new root byte",
        "from size",
        "to size",
        "extra hash",
        "from after to",
    ],
)
def test_tampered_consistency_proof_fails_naming_the_check(material: Material, how: str) -> None:
    tampered = _tamper_consistency(material.consistency(5), how)
    result = run(["log", "verify-consistency", "-"], NO_SETTINGS, input=tampered)
    assert_one_line_error(result, 1, "verification failed: consistency")
    assert check_lines(result) == {"consistency": "FAIL"}


@pytest.mark.parametrize(("field", "claimed"), [("to", SIZE - 1), ("to", SIZE + 2), ("from", 6)])
def test_changed_sizes_fail_against_the_checkpoints_of_the_true_sizes(
    material: Material, tmp_path: Path, field: str, claimed: int
) -> None:
    tampered = mutate(material.consistency(5), **{field: claimed})
    old = write(tmp_path / "old", material.checkpoints[5])
    new = write(tmp_path / "new", material.checkpoints[SIZE])
    result = run(
        [
            "log",
            "verify-consistency",
            "--old-checkpoint",
            str(old),
            "--new-checkpoint",
            str(new),
            "--key",
            material.verifier_key,
        ],
        NO_SETTINGS,
        input=tampered,
    )
    assert result.exit_code == 1
    verdicts = check_lines(result)
    assert verdicts[f"trusted {'new' if field == 'to' else 'old'} root"] == "FAIL"
    assert f"but the proof is for size {claimed}" in result.stdout


def test_consistency_against_a_checkpoint_of_another_size_fails(
    material: Material, tmp_path: Path
) -> None:
    old = write(tmp_path / "old", material.checkpoints[4])
    result = run(
        ["log", "verify-consistency", "--old-checkpoint", str(old), "--key", material.verifier_key],
        NO_SETTINGS,
        input=material.consistency(5),
    )
    assert_one_line_error(result, 1, "verification failed: trusted old root")
    assert check_lines(result) == {
        "consistency": "PASS",
        "old checkpoint": "PASS",
        "trusted old root": "FAIL",
    }


# ------------------------------------------------------------------- input errors


@pytest.mark.parametrize(
    ("command", "data", "fragment"),
    [
        ("verify-inclusion", "{not json", "stdin is not a valid inclusion proof: not valid JSON"),
        ("verify-inclusion", "", "stdin is not a valid inclusion proof"),
        ("verify-inclusion", "[1, 2]", "not a valid inclusion proof"),
        ("verify-consistency", '{"from": 1}', "not a valid consistency proof"),
        (
            "verify-inclusion",
            '{"index": 0, "size": 1, "leafHash": "%%%", "rootHash": "", "proof": []}',
            "leafHash: Value error, not valid standard base64",
        ),
        (
            "verify-inclusion",
            '{"index": -1, "size": 1, "leafHash": "", "rootHash": "", "proof": []}',
            "index:",
        ),
    ],
)
def test_malformed_proof_json_is_a_usage_error(command: str, data: str, fragment: str) -> None:
    result = run(["log", command], NO_SETTINGS, input=data)
    assert_one_line_error(result, 2, fragment)
    assert result.stdout == ""


def test_consistency_proof_given_to_verify_inclusion_says_which_command_to_use(
    material: Material,
) -> None:
    result = run(["log", "verify-inclusion"], NO_SETTINGS, input=material.consistency(3))
    assert_one_line_error(result, 2, "use `carbonledger log verify-consistency`")


def test_missing_proof_file_is_a_usage_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    result = run(["log", "verify-inclusion", str(missing)], NO_SETTINGS)
    assert_one_line_error(result, 2, f"cannot read an inclusion proof from {missing}")


def test_oversized_input_is_refused(tmp_path: Path) -> None:
    result = run(["log", "verify-consistency"], NO_SETTINGS, input=b" " * (MAX_PROOF_BYTES + 1))
    assert_one_line_error(result, 2, "larger than")


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (["--root", "not base64!"], "--root must be a base64 or 0x-hex SHA-256 hash"),
        (["--root", base64.b64encode(b"x" * 31).decode()], "--root is 31 bytes"),
        (["--key", "a+b+c"], "--key is used only with --checkpoint"),
        (["--checkpoint", "NOTE"], "--checkpoint needs --key"),
        (["--checkpoint", "NOTE", "--key", "not-a-key"], "--key: verifier key must look like"),
        (["--checkpoint", "NOTE", "--root", "ROOT", "--key", "KEY"], "not both"),
        (["--leaf-file", "-"], "only one input can be read from stdin"),
    ],
)
def test_bad_trust_options_are_usage_errors(
    material: Material, tmp_path: Path, options: list[str], fragment: str
) -> None:
    note = write(tmp_path / "checkpoint", material.checkpoints[SIZE])
    proof = material.inclusion(0)
    substitutions = {"NOTE": str(note), "ROOT": root_of(proof), "KEY": material.verifier_key}
    args = [substitutions.get(option, option) for option in options]
    result = run(["log", "verify-inclusion", *args], NO_SETTINGS, input=proof)
    assert_one_line_error(result, 2, fragment)
    assert result.stdout == "", "no check runs when the options are wrong"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["log", "prove"], "Missing option '--index'. (see `carbonledger log prove --help`)"),
        (["log", "prove", "--index", "-1"], "Invalid value for '--index'"),
        (["log", "verify-inclusion", "--no-such-option"], "No such option: --no-such-option"),
        (["log", "no-such-command"], "No such command 'no-such-command'"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], fragment: str) -> None:
    result = run(args, NO_SETTINGS)
    assert_one_line_error(result, 2, fragment)


def test_version_and_help_exit_zero() -> None:
    version = run(["--version"], NO_SETTINGS)
    assert version.exit_code == 0
    assert version.stdout.startswith("carbonledger ")
    help_text = run(["log", "verify-inclusion", "--help"], NO_SETTINGS)
    assert help_text.exit_code == 0
    assert "--checkpoint" in help_text.stdout
