// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title PerReadingStore: the "one record per reading on chain" design, for comparison only
/// @notice Not part of carbonledger. scripts/bench/anchor.py compiles it at benchmark time
/// and measures what it costs to put every reading on chain, next to what anchoring a
/// whole batch of readings with one CarbonAnchor root costs. Three shapes, cheapest last:
/// - `record`: the registry shape (a counter, a storage write and an event per reading),
///   like registries that mint one certificate or token per unit;
/// - `store`: one plain `mapping(uint256 => bytes32)` write per transaction;
/// - `storeBatch`: many plain writes in one transaction, which spreads the fixed cost of
///   a transaction; what remains per reading is the storage write itself.
contract PerReadingStore {
    /// reading id => hash of the reading, written by `store` and `storeBatch`.
    mapping(uint256 id => bytes32 readingHash) public readings;
    /// record id => hash of the reading, written by `record` only. A mapping of its own, so
    /// that `record` never lands on a slot `store` already filled: rewriting a used slot
    /// costs a fraction of a fresh one and would understate the per-reading design.
    mapping(uint256 id => bytes32 readingHash) public records;
    /// Number of readings taken through `record`, which also serves as the next id.
    uint256 public recorded;

    event Recorded(uint256 indexed id, bytes32 readingHash);

    /// @notice Store one reading under the next id and announce it.
    function record(bytes32 readingHash) external returns (uint256 id) {
        id = recorded;
        recorded = id + 1;
        records[id] = readingHash;
        emit Recorded(id, readingHash);
    }

    /// @notice One plain storage write: the reading's hash under a caller-chosen id.
    function store(uint256 id, bytes32 readingHash) external {
        readings[id] = readingHash;
    }

    /// @notice Plain storage writes for consecutive ids from `firstId`, in one transaction.
    function storeBatch(uint256 firstId, bytes32[] calldata readingHashes) external {
        for (uint256 i = 0; i < readingHashes.length; ++i) {
            readings[firstId + i] = readingHashes[i];
        }
    }
}
