"""Ethereum account and contract addresses: 20 bytes, spelled with the EIP-55 checksum.

The verifier compares and prints addresses and needs nothing else of Ethereum's libraries:
`eth_utils.address` costs half a second of imports (pydantic, eth_typing, …) for one hash,
which would be half of `carbonledger verify`'s time. Keccak-256 comes from pycryptodome, which
web3's own hashing uses. tests/chain/test_address.py holds this equal to eth_utils.
"""

from __future__ import annotations

import string
from typing import Final

from Crypto.Hash import keccak

ADDRESS_BYTES: Final = 20
_HEX_DIGITS: Final = frozenset(string.hexdigits)


def _keccak256(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


def checksum_address(value: str | bytes) -> str:
    """`value` (20 bytes, or 40 hex digits with or without `0x`, any case) in EIP-55 spelling.

    Raises ValueError for anything else, naming what was wrong.
    """
    if isinstance(value, bytes):
        if len(value) != ADDRESS_BYTES:
            raise ValueError(f"an address is {ADDRESS_BYTES} bytes, not {len(value)}")
        digits = value.hex()
    elif isinstance(value, str):
        digits = value[2:] if value[:2] in ("0x", "0X") else value
        if len(digits) != 2 * ADDRESS_BYTES or not _HEX_DIGITS.issuperset(digits):
            raise ValueError(f"not an address (0x and 40 hex digits): {value[:50]!r}")
        digits = digits.lower()
    else:
        raise ValueError(f"not an address: a {type(value).__name__}")
    hashed = _keccak256(digits.encode("ascii")).hex()
    return "0x" + "".join(
        digit.upper() if int(nibble, 16) >= 8 else digit
        for digit, nibble in zip(digits, hashed, strict=False)
    )


def is_checksum_address(value: str) -> bool:
    """Whether `value` is an address spelled exactly as EIP-55 spells it (with `0x`)."""
    try:
        return value.startswith("0x") and checksum_address(value) == value
    except ValueError:
        return False
