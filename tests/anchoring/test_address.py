"""The verifier's EIP-55 addresses against eth_utils (the library web3 uses), as an oracle."""

from __future__ import annotations

import pytest
from eth_utils.address import is_checksum_address as oracle_is_checksum
from eth_utils.address import to_checksum_address as oracle_checksum
from hypothesis import given
from hypothesis import strategies as st

from attestation.chain.address import checksum_address, is_checksum_address

# EIP-55's own examples
EIP55_EXAMPLES = [
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]


@pytest.mark.parametrize("address", EIP55_EXAMPLES)
def test_eip55_examples(address: str) -> None:
    assert checksum_address(address.lower()) == address
    assert checksum_address(address.upper().replace("0X", "0x")) == address
    assert is_checksum_address(address)
    assert not is_checksum_address(address.lower())


@given(st.binary(min_size=20, max_size=20))
def test_equal_to_eth_utils(raw: bytes) -> None:
    expected = oracle_checksum(raw)
    assert checksum_address(raw) == expected
    assert checksum_address(raw.hex()) == expected
    assert checksum_address("0x" + raw.hex().upper()) == expected
    assert is_checksum_address(expected) == oracle_is_checksum(expected)


@pytest.mark.parametrize(
    "bad",
    ["", "0x", "0x" + "0" * 39, "0x" + "0" * 41, "0x" + "g" * 40, "0x" + "\u0660" * 40, b"\0" * 19],
)
def test_refuses_what_is_not_an_address(bad: str | bytes) -> None:
    with pytest.raises(ValueError):
        checksum_address(bad)
    if isinstance(bad, str):
        assert not is_checksum_address(bad)
