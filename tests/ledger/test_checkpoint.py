"""C2SP signed-note checkpoints (DESIGN §4.4): format, signatures, keys, known answers.

Known-answer data (test vectors only, no code) comes from:
- golang.org/x/mod, sumdb/note/note_test.go (github.com/golang/mod; TestNewVerifier,
  TestSign, TestOpen) and the package documentation in sumdb/note/note.go: the
  "PeterNeumann" and "EnochRoot" keys and their signatures of a two-line note;
- the Go checksum database key "sum.golang.org+033de0ae+…" from github.com/golang/go,
  src/cmd/go/internal/modfetch/key.go, with a signed tree head of that database (a real
  tlog checkpoint, origin "go.sum database tree") as quoted in
  github.com/transparency-dev/trillian-tessera, internal/parse/parse_test.go.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import string
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.log.checkpoint import (
    MAX_SIGNATURES,
    SIGNATURE_LINE_PREFIX,
    Checkpoint,
    CheckpointError,
    NoteSigner,
    NoteVerifier,
    open_checkpoint,
    sign_checkpoint,
)
from ledger.log.merkle import MAX_TREE_SIZE

# --- golang.org/x/mod sumdb/note test vectors ------------------------------------------
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_SIG = (
    "\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
ENOCH_SIG = (
    "\u2014 EnochRoot "
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)
GO_NOTE = GO_TEXT + "\n" + PETER_SIG

# --- the Go checksum database (sum.golang.org) ------------------------------------------
SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
SUMDB_ROOT = "qINS1GRFhWHwdkUeqLEoP4yEMkTBBzxBkGwGQlVlVcs="
SUMDB_NOTE = (
    f"go.sum database tree\n31700353\n{SUMDB_ROOT}\n\n"
    "\u2014 sum.golang.org "
    "Az3grnmrIUEDFqHzAElIQCPNoRFRAAdFo47fooyWKMHb89k11GJh5zHIfNCOBmwn/C3YI8oW9/C8DJ87F61QqspBYwM="
    "\n"  # the quoted bytes omit the signature line's final newline; the note format has it
)

NAME_ALPHABET = string.ascii_letters + string.digits + "./-_:~"
key_names = st.text(NAME_ALPHABET, min_size=1, max_size=40)
seeds = st.binary(min_size=32, max_size=32)


def signer_for(name: str, seed: bytes) -> NoteSigner:
    return NoteSigner(name, Ed25519PrivateKey.from_private_bytes(seed))


def raw_public(seed: bytes) -> bytes:
    return (
        Ed25519PrivateKey.from_private_bytes(seed)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )


SIGNER = signer_for("example.org/log", bytes(range(32)))
CHECKPOINT = Checkpoint("example.org/log", 12345, hashlib.sha256(b"root").digest())


# ------------------------------------------------------------------- known answers


@pytest.mark.parametrize(
    ("vkey", "name", "key_id"),
    [
        (PETER_VKEY, "PeterNeumann", "c74f20a3"),
        (ENOCH_VKEY, "EnochRoot", "af0cfe78"),
        (SUMDB_VKEY, "sum.golang.org", "033de0ae"),  # its base64 contains "+"
    ],
)
def test_known_verifier_keys_parse(vkey: str, name: str, key_id: str) -> None:
    verifier = NoteVerifier.parse(vkey)
    assert verifier.name == name
    assert verifier.key_id.hex() == key_id
    # key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key)[:4]
    assert (
        hashlib.sha256(name.encode() + b"\n" + b"\x01" + verifier.public_key).digest()[:4].hex()
        == key_id
    )
    assert verifier.encode() == vkey


def test_go_signature_verifies_on_the_note_text() -> None:
    verifier = NoteVerifier.parse(PETER_VKEY)
    blob = base64.b64decode(PETER_SIG.split(" ")[2])
    assert blob[:4] == verifier.key_id
    assert verifier.verify(GO_TEXT.encode(), blob[4:])
    assert not verifier.verify(GO_TEXT.replace("cryptography", "cryptographY").encode(), blob[4:])
    assert not verifier.verify(GO_TEXT.encode(), bytes([blob[4] ^ 1]) + blob[5:])
    enoch = base64.b64decode(ENOCH_SIG.split(" ")[2])
    assert NoteVerifier.parse(ENOCH_VKEY).verify(GO_TEXT.encode(), enoch[4:])
    assert not verifier.verify(GO_TEXT.encode(), enoch[4:])


def test_our_signer_reproduces_the_go_signed_note() -> None:
    """Ed25519 is deterministic: the Go private key must give the Go note byte for byte."""
    encoded = PETER_SKEY.split("+", 4)[4]
    raw = base64.b64decode(encoded)
    assert raw[:1] == b"\x01"
    signer = NoteSigner("PeterNeumann", Ed25519PrivateKey.from_private_bytes(raw[1:]))
    assert signer.verifier.encode() == PETER_VKEY
    assert signer.sign(GO_TEXT) == GO_NOTE


def test_open_checkpoint_on_the_go_note() -> None:
    """The Go note is not a checkpoint: the signature layer accepts it, the body parser not."""
    peter, enoch = NoteVerifier.parse(PETER_VKEY), NoteVerifier.parse(ENOCH_VKEY)
    both = GO_TEXT + "\n" + PETER_SIG + ENOCH_SIG
    for note, verifier in [(GO_NOTE, peter), (both, peter), (both, enoch)]:
        with pytest.raises(CheckpointError, match="origin, size and root hash"):
            open_checkpoint(note, verifier)
    with pytest.raises(CheckpointError, match="no signature by the trusted key"):
        open_checkpoint(GO_NOTE, enoch)
    with pytest.raises(CheckpointError, match="does not verify"):
        open_checkpoint(GO_NOTE.replace("cryptography", "cryptographY"), peter)
    # An invalid signature by an unknown key is ignored (TestOpen, "enochABCD").
    broken_enoch = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    with pytest.raises(CheckpointError, match="origin, size and root hash"):
        open_checkpoint(GO_NOTE + broken_enoch, peter)
    # An invalid signature by the trusted key rejects the note (TestOpen, "Invalid signature").
    with pytest.raises(CheckpointError, match="does not verify"):
        open_checkpoint(GO_TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:], peter)


@pytest.mark.parametrize(
    "note",
    [
        GO_TEXT,
        GO_TEXT + "\n",
        GO_TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + GO_TEXT + "\n" + PETER_SIG,
        "\xff" + GO_TEXT + "\n" + PETER_SIG,
        GO_TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name")[:-1],
        GO_TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
    ],
    ids=range(7),
)
def test_go_malformed_notes_are_rejected(note: str) -> None:
    """TestOpen's badMsgs: none may open (with the Go text, body parsing never succeeds,
    so the check is that the error is raised before or at the signature layer)."""
    with pytest.raises(CheckpointError) as raised:
        open_checkpoint(note, NoteVerifier.parse(PETER_VKEY))
    assert "origin, size and root hash" not in str(raised.value)


def test_go_mangled_verifier_keys_are_rejected() -> None:
    """TestNewVerifier: every proper substring and every single-byte increment fails."""
    mangled = [
        PETER_VKEY[i:j]
        for i in range(len(PETER_VKEY) + 1)
        for j in range(i + 1, len(PETER_VKEY) + 1)
        if (i, j) != (0, len(PETER_VKEY))
    ]
    mangled += [
        PETER_VKEY[:i] + chr(ord(PETER_VKEY[i]) + 1) + PETER_VKEY[i + 1 :]
        for i in range(len(PETER_VKEY))
    ]
    mangled += [
        # wrong key length, unknown algorithm (both with a matching key hash)
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ]
    accepted = []
    for text in mangled:
        try:
            NoteVerifier.parse(text)
        except CheckpointError:
            continue
        accepted.append(text)
    assert accepted == []


def test_real_sum_golang_org_checkpoint_opens() -> None:
    verifier = NoteVerifier.parse(SUMDB_VKEY)
    checkpoint = open_checkpoint(SUMDB_NOTE, verifier)
    assert checkpoint == Checkpoint(
        "go.sum database tree", 31700353, base64.b64decode(SUMDB_ROOT), ()
    )
    with pytest.raises(CheckpointError, match="does not verify"):
        open_checkpoint(SUMDB_NOTE.replace("31700353", "31700354"), verifier)
    with pytest.raises(CheckpointError, match="no signature by the trusted key"):
        open_checkpoint(SUMDB_NOTE, NoteVerifier.parse(PETER_VKEY))


# --------------------------------------------------------------------------- keys


@given(key_names, seeds)
@settings(max_examples=100, deadline=None)
def test_verifier_key_encode_parse_round_trip(name: str, seed: bytes) -> None:
    verifier = signer_for(name, seed).verifier
    text = verifier.encode()
    name_part, key_id_part, key_part = text.split("+", 2)
    assert (name_part, key_id_part) == (name, verifier.key_id.hex())
    assert base64.b64decode(key_part) == b"\x01" + raw_public(seed)
    assert NoteVerifier.parse(text) == verifier


@given(key_names, seeds)
@settings(max_examples=50, deadline=None)
def test_key_id_definition(name: str, seed: bytes) -> None:
    public = raw_public(seed)
    expected = hashlib.sha256(name.encode() + b"\x0a" + b"\x01" + public).digest()[:4]
    assert NoteVerifier(name, public).key_id == expected
    assert signer_for(name, seed).verifier.key_id == expected


@pytest.mark.parametrize("name", ["", "with space", "plus+sign", "tab\tname", "new\nline"])
def test_key_names_follow_the_signed_note_rules(name: str) -> None:
    with pytest.raises(CheckpointError):
        signer_for(name, bytes(32))
    with pytest.raises(CheckpointError):
        NoteVerifier(name, raw_public(bytes(32)))


# --------------------------------------------------------------------- round trip

origins = st.text(
    st.characters(min_codepoint=0x20, exclude_categories=["Cs", "Zl", "Zp", "Cc"]),
    min_size=1,
    max_size=60,
).filter(lambda origin: not any(c.isspace() and c != " " for c in origin))
extension_lines = st.lists(
    st.text(
        st.characters(min_codepoint=0x21, exclude_categories=["Cs", "Zl", "Zp", "Cc"]),
        min_size=1,
        max_size=30,
    ),
    max_size=3,
)


@given(
    origin=origins,
    size=st.integers(0, MAX_TREE_SIZE),
    root=st.binary(min_size=32, max_size=32),
    extensions=extension_lines,
    seed=seeds,
)
@settings(max_examples=100, deadline=None)
def test_sign_open_round_trip(
    origin: str, size: int, root: bytes, extensions: list[str], seed: bytes
) -> None:
    checkpoint = Checkpoint(origin, size, root, tuple(extensions))
    signer = signer_for("example.org/log", seed)
    note = sign_checkpoint(checkpoint, signer)
    body = "\n".join([origin, str(size), base64.b64encode(root).decode(), *extensions]) + "\n"
    assert note.startswith(body + "\n" + SIGNATURE_LINE_PREFIX + "example.org/log ")
    assert note.endswith("\n") and note.count("\n") == body.count("\n") + 2
    assert open_checkpoint(note, signer.verifier) == checkpoint
    assert Checkpoint.parse_body(body) == checkpoint


# ---------------------------------------------------------------------- tampering


def _body_and_blob(note: str) -> tuple[str, str, bytes]:
    text, _, signature_line = note.rpartition("\n\n")
    prefix, _, encoded = signature_line.rstrip("\n").rpartition(" ")
    return text + "\n", prefix, base64.b64decode(encoded)


def test_any_changed_character_of_the_body_is_rejected() -> None:
    note = sign_checkpoint(dataclasses.replace(CHECKPOINT, extensions=("ext-line",)), SIGNER)
    body, _, _ = _body_and_blob(note)
    signatures = note[len(body) :]
    for position, character in enumerate(body):
        for replacement in {chr(ord(character) ^ 1), chr(ord(character) ^ 0x20), "\u00e9"}:
            if replacement == character:
                continue
            tampered = body[:position] + replacement + body[position + 1 :] + signatures
            with pytest.raises(CheckpointError):
                open_checkpoint(tampered, SIGNER.verifier)


def test_any_flipped_bit_of_the_signature_is_rejected() -> None:
    note = sign_checkpoint(CHECKPOINT, SIGNER)
    body, prefix, blob = _body_and_blob(note)
    assert len(blob) == 4 + 64
    for bit in range(len(blob) * 8):
        changed = bytearray(blob)
        changed[bit // 8] ^= 1 << (bit % 8)
        tampered = f"{body}\n{prefix} {base64.b64encode(bytes(changed)).decode()}\n"
        # A changed key ID makes it a signature by an unknown key (ignored, so nothing
        # verifies); a changed signature by the trusted key rejects the note.
        expected = "no signature by the trusted key" if bit < 32 else "does not verify"
        with pytest.raises(CheckpointError, match=expected):
            open_checkpoint(tampered, SIGNER.verifier)


def test_changed_base64_characters_of_the_signature() -> None:
    """Every other character at every position is rejected, except the aliases that the
    two unused low bits of the last base64 digit allow (68 bytes = 91 digits + "="):
    they decode to the same bytes, so the same signature (Go's decoder accepts them too)."""
    note = sign_checkpoint(CHECKPOINT, SIGNER)
    body, prefix, blob = _body_and_blob(note)
    encoded = base64.b64encode(blob).decode()
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/"
    aliases = []
    for position, character in enumerate(encoded):
        for replacement in alphabet + "=":
            if replacement == character:
                continue
            changed = encoded[:position] + replacement + encoded[position + 1 :]
            try:
                open_checkpoint(f"{body}\n{prefix} {changed}\n", SIGNER.verifier)
            except CheckpointError:
                continue
            aliases.append(position)
            assert base64.b64decode(changed) == blob
    assert set(aliases) <= {len(encoded) - 2}
    assert len(aliases) == 3


# ------------------------------------------------------------- keys and signatures


def test_wrong_keys_per_signed_note_rules() -> None:
    note = sign_checkpoint(CHECKPOINT, SIGNER)
    other_name = signer_for("other.example/log", bytes(range(1, 33)))
    same_name_other_key = signer_for(SIGNER.name, bytes(range(2, 34)))
    # Only unknown keys signed it: "no signature by the trusted key".
    for verifier in (other_name.verifier, same_name_other_key.verifier):
        with pytest.raises(CheckpointError, match="no signature by the trusted key"):
            open_checkpoint(note, verifier)
    # A signature claiming the trusted key's name and ID but made by another key fails.
    body, prefix, _ = _body_and_blob(note)
    forged_signature = _body_and_blob(same_name_other_key.sign(body))[2][4:]
    forged_blob = SIGNER.verifier.key_id + forged_signature
    forged = f"{body}\n{prefix} {base64.b64encode(forged_blob).decode()}\n"
    with pytest.raises(CheckpointError, match="does not verify"):
        open_checkpoint(forged, SIGNER.verifier)


def test_signatures_by_unknown_keys_are_ignored() -> None:
    body = CHECKPOINT.body()
    ours = SIGNER.sign(body)[len(body) + 1 :]
    theirs = signer_for("witness.example/w1", bytes(range(5, 37))).sign(body)[len(body) + 1 :]
    garbage = (
        f"{SIGNATURE_LINE_PREFIX}{SIGNER.name} {base64.b64encode(b'0000' + bytes(64)).decode()}\n"
    )
    # Same ID, other name: also an unknown key (signed-note: "share a name or ID (but not
    # both)"), even though its bytes are a valid signature by the trusted key.
    same_id = ours.replace(f" {SIGNER.name} ", " other.example/log ")
    for signatures in (
        ours + theirs,
        theirs + ours,
        garbage + ours,
        ours + garbage,
        same_id + ours,
    ):
        assert open_checkpoint(f"{body}\n{signatures}", SIGNER.verifier) == CHECKPOINT
    for unknown_only in (theirs + garbage, same_id):
        with pytest.raises(CheckpointError, match="no signature by the trusted key"):
            open_checkpoint(f"{body}\n{unknown_only}", SIGNER.verifier)


def test_a_bad_second_signature_by_the_trusted_key_rejects_the_note() -> None:
    body = CHECKPOINT.body()
    ours = SIGNER.sign(body)[len(body) + 1 :]
    _, prefix, blob = _body_and_blob(SIGNER.sign(body))
    bad = f"{prefix} {base64.b64encode(blob[:-1] + bytes([blob[-1] ^ 1])).decode()}\n"
    with pytest.raises(CheckpointError, match="does not verify"):
        open_checkpoint(f"{body}\n{ours}{bad}", SIGNER.verifier)


def test_signature_count_limit() -> None:
    body = CHECKPOINT.body()
    ours = SIGNER.sign(body)[len(body) + 1 :]
    assert MAX_SIGNATURES >= 16  # signed-note: verifiers MUST accept at least 16
    assert open_checkpoint(f"{body}\n{ours * MAX_SIGNATURES}", SIGNER.verifier) == CHECKPOINT
    with pytest.raises(CheckpointError, match="signatures"):
        open_checkpoint(f"{body}\n{ours * (MAX_SIGNATURES + 1)}", SIGNER.verifier)


# ----------------------------------------------------------------------- structure


def _note() -> str:
    return sign_checkpoint(CHECKPOINT, SIGNER)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda note: note.replace("\n\n", "\n"),  # no blank line before the signatures
        lambda note: note[:-1],  # signature line without its newline
        lambda note: note + "\n",  # empty line after the signatures
        lambda note: note.replace("\u2014", "-"),  # not an em dash
        lambda note: note.replace("\u2014 ", "\u2014"),
        lambda note: "\x07" + note,  # control character in the text
        lambda note: note.replace("\n", "\r\n"),
        lambda note: note + "\u2014 other.example/x\tAAAAAAA=\n",  # tab in a signature line
        lambda note: note + "\u2014 other\x01name AAAAAAA=\n",  # control character in a name
        lambda note: note + "\u2014 other.example/x AAAAAAA=\r\n",  # CR in a signature line
        lambda note: "\ud800" + note,  # not encodable as UTF-8 (e.g. from JSON "\ud800")
        lambda note: note + "\u2014 other.example/x AAAA\n",  # signature under 5 bytes
        lambda note: note + "\u2014 other.example/x not-base64!\n",
    ],
    ids=range(13),
)
def test_malformed_notes_are_rejected(mangle: Callable[[str], str]) -> None:
    with pytest.raises(CheckpointError):
        open_checkpoint(mangle(_note()), SIGNER.verifier)


def test_oversized_note_is_rejected() -> None:
    checkpoint = Checkpoint(CHECKPOINT.origin, 1, CHECKPOINT.root_hash, ("x" * (1 << 20),))
    with pytest.raises(CheckpointError, match="too large"):
        open_checkpoint(sign_checkpoint(checkpoint, SIGNER), SIGNER.verifier)


@pytest.mark.parametrize(
    "body",
    [
        "origin\n12\n",  # no root line
        "origin\n12\n" + base64.b64encode(bytes(32)).decode(),  # no final newline
        "origin\n012\n" + base64.b64encode(bytes(32)).decode() + "\n",  # leading zero
        "origin\n-1\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "origin\n+1\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "origin\n 1\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "origin\n1.0\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "origin\n\u0661\u0662\n" + base64.b64encode(bytes(32)).decode() + "\n",  # Arabic-Indic
        "origin\n\u00b2\n" + base64.b64encode(bytes(32)).decode() + "\n",  # superscript two
        f"origin\n{MAX_TREE_SIZE + 1}\n" + base64.b64encode(bytes(32)).decode() + "\n",
        "origin\n12\n" + base64.b64encode(bytes(31)).decode() + "\n",
        "origin\n12\n" + base64.b64encode(bytes(33)).decode() + "\n",
        "origin\n12\nnot base64!\n",
        "origin\n12\n" + base64.b64encode(bytes(32)).decode() + "\n\nextension\n",
        "\n12\n" + base64.b64encode(bytes(32)).decode() + "\n",  # empty origin
        "orig\tin\n12\n" + base64.b64encode(bytes(32)).decode() + "\n",
    ],
    ids=range(16),
)
def test_malformed_checkpoint_bodies_are_rejected(body: str) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint.parse_body(body)
    # … also when properly signed: the signature does not make a bad body acceptable.
    if body.endswith("\n") and "\n\n" not in body and "\t" not in body:
        with pytest.raises(CheckpointError):
            open_checkpoint(SIGNER.sign(body), SIGNER.verifier)
