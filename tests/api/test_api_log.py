"""The log routes, checked the way an outside verifier would: with the pure verifiers."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from api_helpers import access_token, assert_problem, bearer
from fastapi.testclient import TestClient

from api.problems import NOT_FOUND, PROOF_REQUEST_INVALID
from ledger.access.clients import IssuedClient
from ledger.log.canonical import canonical_entry
from ledger.log.checkpoint import NoteVerifier, open_checkpoint
from ledger.log.merkle import (
    EMPTY_ROOT,
    InclusionProofError,
    leaf_hash,
    root_of_leaves,
    verify_consistency,
    verify_inclusion,
)
from ledger.registry import Registry

SIZE = 13
"""Not a power of two, so proofs cross incomplete subtrees."""


def b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def entries(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"kind": "test.reading/1", "meter": "m-1", "seq": n} for n in range(start, count)]


@pytest.fixture
def leaves(registry: Registry) -> list[bytes]:
    """SIZE entries appended through the log's single write path; their canonical bytes."""
    written = entries(SIZE)
    assert registry.log.append(written) == list(range(SIZE))
    return [canonical_entry(entry) for entry in written]


def test_log_info_of_an_empty_log(client: TestClient, registry: Registry) -> None:
    response = client.get("/v1/log")
    assert response.status_code == 200
    info = response.json()
    assert set(info) == {"origin", "size", "rootHash", "verifierKey", "issuers"}
    assert info["issuers"] == []  # declared on the first certificate, never by a read
    assert info["origin"] == registry.signer.name
    assert info["size"] == 0
    assert b64(info["rootHash"]) == EMPTY_ROOT
    assert NoteVerifier.parse(info["verifierKey"]) == registry.signer.verifier


def test_checkpoint_verifies_with_the_published_key(
    client: TestClient, leaves: list[bytes]
) -> None:
    info = client.get("/v1/log").json()
    response = client.get("/v1/log/checkpoint")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    checkpoint = open_checkpoint(response.text, NoteVerifier.parse(info["verifierKey"]))
    assert checkpoint.origin == info["origin"]
    assert checkpoint.size == SIZE == info["size"]
    assert checkpoint.root_hash == root_of_leaves(leaves) == b64(info["rootHash"])


def test_every_inclusion_proof_verifies(client: TestClient, leaves: list[bytes]) -> None:
    for size in range(1, SIZE + 1):
        root = root_of_leaves(leaves[:size])
        for index in range(size):
            response = client.get("/v1/log/proofs/inclusion", params={"index": index, "size": size})
            assert response.status_code == 200, response.text
            body = response.json()
            assert (body["index"], body["size"]) == (index, size)
            assert b64(body["leafHash"]) == leaf_hash(leaves[index])
            assert b64(body["rootHash"]) == root
            verify_inclusion(
                index, size, leaf_hash(leaves[index]), [b64(h) for h in body["proof"]], root
            )


def test_inclusion_proof_defaults_to_the_current_size(
    client: TestClient, leaves: list[bytes]
) -> None:
    body = client.get("/v1/log/proofs/inclusion", params={"index": 4}).json()
    assert body["size"] == SIZE
    proof = [b64(h) for h in body["proof"]]
    verify_inclusion(4, SIZE, leaf_hash(leaves[4]), proof, root_of_leaves(leaves))
    # The proof is for leaf 4 only: the same path does not prove a neighbour.
    with pytest.raises(InclusionProofError):
        verify_inclusion(4, SIZE, leaf_hash(leaves[5]), proof, root_of_leaves(leaves))


def test_every_consistency_proof_verifies(client: TestClient, leaves: list[bytes]) -> None:
    for old in range(1, SIZE + 1):
        for new in range(old, SIZE + 1):
            response = client.get("/v1/log/proofs/consistency", params={"from": old, "to": new})
            assert response.status_code == 200, response.text
            body = response.json()
            assert (body["from"], body["to"]) == (old, new)
            old_root, new_root = root_of_leaves(leaves[:old]), root_of_leaves(leaves[:new])
            assert (b64(body["oldRootHash"]), b64(body["newRootHash"])) == (old_root, new_root)
            verify_consistency(old, new, [b64(h) for h in body["proof"]], old_root, new_root)


def test_a_remembered_checkpoint_is_consistent_with_the_grown_log(
    client: TestClient, registry: Registry
) -> None:
    registry.log.append(entries(5))
    remembered = client.get("/v1/log").json()
    registry.log.append(entries(11, start=5))

    body = client.get("/v1/log/proofs/consistency", params={"from": 5}).json()
    current = client.get("/v1/log").json()

    assert body["to"] == current["size"] == 11
    verify_consistency(
        5,
        11,
        [b64(h) for h in body["proof"]],
        b64(remembered["rootHash"]),
        b64(current["rootHash"]),
    )


def test_entry_leaf_bytes_hash_to_the_inclusion_proof_leaf(
    client: TestClient,
    leaves: list[bytes],
    make_api_client: Callable[..., IssuedClient],
) -> None:
    token = access_token(client, make_api_client("log:read"))
    response = client.get("/v1/log/entries/7", headers=bearer(token))

    assert response.status_code == 200, response.text
    body = response.json()
    leaf = b64(body["leaf"])
    assert leaf == leaves[7]
    assert body["entry"] == {"kind": "test.reading/1", "meter": "m-1", "seq": 7}
    proof = client.get("/v1/log/proofs/inclusion", params={"index": 7}).json()
    assert b64(body["leafHash"]) == leaf_hash(leaf) == b64(proof["leafHash"])
    verify_inclusion(
        7, SIZE, leaf_hash(leaf), [b64(h) for h in proof["proof"]], b64(proof["rootHash"])
    )


def test_entry_beyond_the_log_is_404(
    client: TestClient, leaves: list[bytes], make_api_client: Callable[..., IssuedClient]
) -> None:
    token = access_token(client, make_api_client("log:read"))
    response = client.get(f"/v1/log/entries/{SIZE}", headers=bearer(token))
    assert_problem(response, NOT_FOUND, instance=f"/v1/log/entries/{SIZE}")


UNSATISFIABLE_PROOF_REQUESTS = [
    ("/v1/log/proofs/inclusion", {"index": SIZE}),  # index == size
    ("/v1/log/proofs/inclusion", {"index": 0, "size": SIZE + 1}),  # beyond the head
    ("/v1/log/proofs/inclusion", {"index": 5, "size": 5}),
    ("/v1/log/proofs/consistency", {"from": 6, "to": 5}),  # from > to
    ("/v1/log/proofs/consistency", {"from": 1, "to": SIZE + 1}),
    ("/v1/log/proofs/consistency", {"from": SIZE + 1}),  # from > the current size
]


def test_unsatisfiable_proof_requests_are_400(client: TestClient, leaves: list[bytes]) -> None:
    for path, params in UNSATISFIABLE_PROOF_REQUESTS:
        response = client.get(path, params=params)
        body = assert_problem(response, PROOF_REQUEST_INVALID, instance=path, case=params)
        assert "proof" not in body


def test_proofs_of_an_empty_log_are_400(client: TestClient) -> None:
    assert_problem(
        client.get("/v1/log/proofs/inclusion", params={"index": 0}), PROOF_REQUEST_INVALID
    )
    assert_problem(
        client.get("/v1/log/proofs/consistency", params={"from": 1}), PROOF_REQUEST_INVALID
    )
