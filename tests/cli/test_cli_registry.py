"""CLI commands that use a registry: init, admin create-client, log checkpoint / prove,
on SQLite and PostgreSQL (the `database_url` fixture)."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import psycopg
import pytest
from cli_helpers import CliRegistry, assert_one_line_error, check_lines, isolated_env, run
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from api.schemas.log import ConsistencyProofBody, InclusionProofBody
from api.security import KNOWN_SCOPES
from ledger.access.clients import authenticate_client
from ledger.access.models import ApiClient
from ledger.log.checkpoint import NoteVerifier, open_checkpoint
from ledger.log.merkle import leaf_hash, root_of_leaves
from ledger.registry import open_registry
from ledger.storage.db import Database

# ---------------------------------------------------------------------------- init


def test_init_creates_private_key_files_and_is_idempotent(
    cli_env: dict[str, str | None], tmp_path: Path
) -> None:
    first = run(["init", "--json"], cli_env)
    assert first.exit_code == 0, first.output
    data_dir = tmp_path / "data"
    key_file, token_file = data_dir / "log-key.pem", data_dir / "token-secret"
    for path in (key_file, token_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    key_pem, token = key_file.read_bytes(), token_file.read_bytes()

    second = run(["init"], cli_env)
    assert second.exit_code == 0, second.output
    again = run(["init", "--json"], cli_env)
    assert json.loads(again.stdout) == json.loads(first.stdout)
    # Nothing was regenerated: keys and the log's identity survive a re-run.
    assert key_file.read_bytes() == key_pem
    assert token_file.read_bytes() == token
    assert re.search(r"log key\s+\S+log-key\.pem\s+\(kept\)", second.stdout)
    assert re.search(r"token secret\s+\S+token-secret\s+\(kept\)", second.stdout)


def test_init_prints_the_origin_and_a_verifier_key_that_checks_checkpoints(
    cli_env: dict[str, str | None],
) -> None:
    result = run(["init"], cli_env)
    assert result.exit_code == 0, result.output
    fields = dict(re.findall(r"^\s+(origin|verifier key)\s+(\S+)$", result.stdout, re.MULTILINE))
    verifier = NoteVerifier.parse(fields["verifier key"])

    note = run(["log", "checkpoint"], cli_env)
    assert note.exit_code == 0, note.output
    checkpoint = open_checkpoint(note.stdout, verifier)
    assert checkpoint.origin == fields["origin"]
    assert checkpoint.size == 0


def test_init_on_an_unreachable_database_is_a_clean_error(tmp_path: Path) -> None:
    env = isolated_env(
        data_dir=str(tmp_path / "data"),
        database_url="postgresql://carbon:hunter2@127.0.0.1:1/registry",
    )
    result = run(["init"], env)
    assert_one_line_error(result, 3, "database error", "127.0.0.1")
    assert "hunter2" not in result.output


# ---------------------------------------------------------------- create-client


def test_create_client_prints_a_secret_that_authenticates(cli_registry: CliRegistry) -> None:
    result = run(
        ["admin", "create-client", "--org", "Acme Grid", "--scopes", "log:read admin", "--json"],
        cli_registry.env,
    )
    assert result.exit_code == 0, result.output
    issued = json.loads(result.stdout)
    assert issued["organisation"] == "Acme Grid"
    assert issued["scopes"] == ["admin", "log:read"]

    database = Database(cli_registry.settings.resolved_database_url())
    try:
        client = authenticate_client(database, issued["clientId"], issued["clientSecret"])
        assert client is not None
        assert client.scopes == {"admin", "log:read"}
        assert client.organisation_id == issued["organisationId"]
        assert (
            authenticate_client(database, issued["clientId"], issued["clientSecret"] + "x") is None
        )
    finally:
        database.dispose()


def test_create_client_human_output_is_copyable(cli_registry: CliRegistry) -> None:
    result = run(
        ["admin", "create-client", "--org", "Acme", "--scope", "log:read", "--scope", "log:read"],
        cli_registry.env,
    )
    assert result.exit_code == 0, result.output
    # One value per line, nothing around it, so a double-click copies exactly the secret.
    client_id = re.search(r"^\s+client id\s+(\S+)$", result.stdout, re.MULTILINE)
    secret = re.search(r"^\s+client secret\s+(\S+)$", result.stdout, re.MULTILINE)
    assert client_id and secret
    assert "shown only once" in result.stderr

    database = Database(cli_registry.settings.resolved_database_url())
    try:
        client = authenticate_client(database, client_id.group(1), secret.group(1))
        assert client is not None
        assert client.scopes == {"log:read"}
    finally:
        database.dispose()


def _client_count(cli_registry: CliRegistry) -> int:
    database = Database(cli_registry.settings.resolved_database_url())
    try:
        with database.read() as session:
            return session.execute(select(func.count()).select_from(ApiClient)).scalar_one()
    finally:
        database.dispose()


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        (
            ["--scopes", "log:read logs:write"],
            "unknown scope logs:write; known scopes: " + ", ".join(sorted(KNOWN_SCOPES)),
        ),
        ([], "give the client's scopes"),
        (["--scopes", " , "], "give the client's scopes"),
    ],
)
def test_create_client_with_bad_scopes_creates_nothing(
    cli_registry: CliRegistry, options: list[str], fragment: str
) -> None:
    result = run(["admin", "create-client", "--org", "Acme", *options], cli_registry.env)
    assert_one_line_error(result, 2, fragment)
    assert _client_count(cli_registry) == 0


def test_create_client_with_a_blank_organisation_is_a_usage_error(
    cli_registry: CliRegistry,
) -> None:
    result = run(["admin", "create-client", "--org", "  ", "--scopes", "admin"], cli_registry.env)
    assert_one_line_error(result, 2, "organisation name")
    assert _client_count(cli_registry) == 0


# ------------------------------------------------------------ checkpoint and prove


def test_checkpoint_of_the_current_and_an_earlier_size(cli_registry: CliRegistry) -> None:
    leaves = cli_registry.append(6)
    verifier = NoteVerifier.parse(cli_registry.verifier_key)
    for args, size in ((["log", "checkpoint"], 6), (["log", "checkpoint", "--size", "4"], 4)):
        result = run(args, cli_registry.env)
        assert result.exit_code == 0, result.output
        checkpoint = open_checkpoint(result.stdout, verifier)
        assert (checkpoint.origin, checkpoint.size) == (cli_registry.origin, size)
        assert checkpoint.root_hash == root_of_leaves(leaves[:size])


def test_prove_and_verify_inclusion_round_trip_via_stdin(
    cli_registry: CliRegistry, tmp_path: Path
) -> None:
    leaves = cli_registry.append(11)
    key = cli_registry.verifier_key
    for index, size in ((0, None), (6, None), (10, None), (3, 4), (7, 8)):
        size_args = [] if size is None else ["--size", str(size)]
        proof = run(["log", "prove", "--index", str(index), *size_args], cli_registry.env)
        assert proof.exit_code == 0, proof.output
        assert proof.stderr == ""
        body = InclusionProofBody.model_validate_json(proof.stdout)
        assert (body.index, body.size) == (index, size or 11)
        assert body.leaf_hash == leaf_hash(leaves[index])

        note = run(["log", "checkpoint", *size_args], cli_registry.env)
        note_file = tmp_path / f"checkpoint-{index}"
        note_file.write_text(note.stdout)
        leaf_file = tmp_path / f"leaf-{index}"
        leaf_file.write_bytes(leaves[index])

        verified = run(
            [
                "log",
                "verify-inclusion",
                "-",
                "--leaf-file",
                str(leaf_file),
                "--checkpoint",
                str(note_file),
                "--key",
                key,
            ],
            isolated_env(),  # the verifier has nothing but the files
            input=proof.stdout,
        )
        assert verified.exit_code == 0, verified.output
        assert set(check_lines(verified).values()) == {"PASS"}
        assert set(check_lines(verified)) == {"leaf", "inclusion", "checkpoint", "trusted root"}


def test_prove_writes_the_api_wire_format(cli_registry: CliRegistry) -> None:
    cli_registry.append(5)
    result = run(["log", "prove", "--index", "2"], cli_registry.env)
    registry = open_registry(cli_registry.settings, migrate=False)
    try:
        expected = InclusionProofBody.from_proof(registry.log.inclusion_proof(2))
        consistency = ConsistencyProofBody.from_proof(registry.log.consistency_proof(3))
    finally:
        registry.close()
    assert result.stdout == expected.model_dump_json(by_alias=True) + "\n"
    result = run(["log", "prove-consistency", "--from", "3"], cli_registry.env)
    assert result.stdout == consistency.model_dump_json(by_alias=True) + "\n"


def test_prove_and_verify_consistency_round_trip_and_tamper(
    cli_registry: CliRegistry, tmp_path: Path
) -> None:
    cli_registry.append(3)
    old_note = tmp_path / "old"
    old_note.write_text(run(["log", "checkpoint"], cli_registry.env).stdout)
    cli_registry.append(7)
    new_note = tmp_path / "new"
    new_note.write_text(run(["log", "checkpoint"], cli_registry.env).stdout)

    proof = run(["log", "prove-consistency", "--from", "3"], cli_registry.env)
    assert proof.exit_code == 0, proof.output
    trust = [
        "--old-checkpoint",
        str(old_note),
        "--new-checkpoint",
        str(new_note),
        "--key",
        cli_registry.verifier_key,
    ]
    verified = run(["log", "verify-consistency", *trust], isolated_env(), input=proof.stdout)
    assert verified.exit_code == 0, verified.output
    assert set(check_lines(verified).values()) == {"PASS"}

    body = json.loads(proof.stdout)
    body["proof"][-1] = body["proof"][0]
    tampered = run(["log", "verify-consistency", *trust], isolated_env(), input=json.dumps(body))
    assert_one_line_error(tampered, 1, "verification failed: consistency")
    assert check_lines(tampered)["consistency"] == "FAIL"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["log", "prove", "--index", "4"], "index 4 is outside a tree of size 4"),
        (["log", "prove", "--index", "0", "--size", "5"], "tree size 5 is outside 0..4"),
        (["log", "prove-consistency", "--from", "5"], "0 < from <= to; got from=5, to=4"),
        (["log", "prove-consistency", "--from", "2", "--to", "9"], "tree size 9 is outside"),
        (["log", "checkpoint", "--size", "5"], "tree size 5 is outside"),
    ],
)
def test_impossible_proof_requests_are_usage_errors(
    cli_registry: CliRegistry, args: list[str], fragment: str
) -> None:
    cli_registry.append(4)
    result = run(args, cli_registry.env)
    assert_one_line_error(result, 2, fragment)
    assert result.stdout == ""


# ------------------------------------------------------------ not initialised


@pytest.mark.parametrize(
    "args",
    [
        ["log", "checkpoint"],
        ["log", "prove", "--index", "0"],
        ["log", "prove-consistency", "--from", "1"],
        ["admin", "create-client", "--org", "Acme", "--scopes", "admin"],
        ["serve", "--port", "1"],
    ],
)
def test_commands_on_an_uninitialised_registry_say_to_run_init_and_create_nothing(
    cli_env: dict[str, str | None], database_url: str, tmp_path: Path, args: list[str]
) -> None:
    result = run(args, cli_env)
    assert_one_line_error(result, 3, "not initialised", "run `carbonledger init`")
    assert not (tmp_path / "data").exists()
    if make_url(database_url).get_backend_name() == "postgresql":
        with psycopg.connect(database_url) as connection:
            tables = connection.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchone()
        assert tables == (0,)


def test_data_dir_option_overrides_the_environment(
    cli_registry: CliRegistry, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    env = {**cli_registry.env, "CARBONLEDGER_DATABASE_URL": None}
    result = run(["--data-dir", str(elsewhere), "log", "checkpoint"], env)
    assert_one_line_error(result, 3, str(elsewhere / "carbonledger.db"))

    made = run(["--data-dir", str(elsewhere), "init", "--json"], env)
    assert made.exit_code == 0, made.output
    assert (elsewhere / "log-key.pem").exists()
    assert json.loads(made.stdout)["verifierKey"] != cli_registry.verifier_key


def test_outdated_schema_asks_for_init(cli_registry: CliRegistry) -> None:
    database = Database(cli_registry.settings.resolved_database_url())
    try:
        with database.write() as session:
            session.execute(text("UPDATE alembic_version SET version_num = '0000_older'"))
    finally:
        database.dispose()
    result = run(["log", "checkpoint"], cli_registry.env)
    assert_one_line_error(result, 3, "revision 0000_older", "run `carbonledger init`")


def test_unreadable_log_key_is_a_clean_error(cli_registry: CliRegistry) -> None:
    cli_registry.append(1)
    key_file = cli_registry.settings.resolved_log_key_file()
    key_file.chmod(0o644)
    result = run(["log", "checkpoint"], cli_registry.env)
    assert_one_line_error(result, 3, "readable by others", f"chmod 600 {key_file}")
    # Proofs need no signing key.
    assert run(["log", "prove", "--index", "0"], cli_registry.env).exit_code == 0


def test_invalid_setting_names_the_variable(cli_registry: CliRegistry) -> None:
    env = {**cli_registry.env, "CARBONLEDGER_TOKEN_TTL_SECONDS": "forever"}
    result = run(["log", "checkpoint"], env)
    assert_one_line_error(result, 2, "invalid setting CARBONLEDGER_TOKEN_TTL_SECONDS")


def test_export_tiles_writes_a_static_mirror(cli_registry: CliRegistry, tmp_path: Path) -> None:
    cli_registry.append(5)
    mirror = tmp_path / "mirror"
    result = run(["log", "export-tiles", str(mirror)], cli_registry.env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "size": 5,
        "hashTiles": 1,
        "entryBundles": 0,
        "directory": str(mirror),
    }
    assert (mirror / "tile/0/000.p/5").stat().st_size == 5 * 32
    assert (mirror / "checkpoint").read_text() == run(
        ["log", "checkpoint"], cli_registry.env
    ).stdout
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    refused = run(["log", "export-tiles", str(blocked)], cli_registry.env)
    assert refused.exit_code == 2 and "is not a directory" in refused.stderr
