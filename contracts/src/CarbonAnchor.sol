// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {RFC9162} from "./RFC9162.sol";

/// @title CarbonAnchor: append-only anchoring of RFC 9162 log roots
/// @notice One contract serves many logs, each named by a `logId`. For each log it
/// keeps the latest anchored tree size and the root at every anchored size. A new
/// root is accepted only if its size grows and an RFC 9162 consistency proof from
/// the last anchored (size, root) verifies on chain, so the chain itself refuses any
/// root that rewrites anchored history. Only accounts with ANCHORER_ROLE may anchor;
/// accounts with DEFAULT_ADMIN_ROLE grant and revoke roles.
contract CarbonAnchor is AccessControl {
    bytes32 public constant ANCHORER_ROLE = keccak256("ANCHORER_ROLE");

    /// logId => latest anchored tree size (0: nothing anchored yet). One slot per log.
    mapping(bytes32 logId => uint64 size) private _latestSize;
    /// logId => tree size => root. One slot per anchored root; zero means not anchored.
    mapping(bytes32 logId => mapping(uint64 size => bytes32 root)) private _roots;

    /// Emitted for every accepted root. `previousSize` is 0 for the first anchor of a log.
    event Anchored(
        bytes32 indexed logId, uint64 indexed size, bytes32 root, uint64 previousSize, address indexed anchorer
    );

    /// The new size must be greater than the last anchored size (0 before the first anchor).
    error SizeNotGrowing(uint64 previous, uint64 given);
    /// The first anchor of a log has nothing to be consistent with, so it takes no proof.
    error EmptyProofRequiredForFirstAnchor();
    /// No root is anchored for this log at this size.
    error UnknownAnchor(bytes32 logId, uint64 size);
    /// A zero root is reserved to mean "not anchored" (no SHA-256 output is zero in practice).
    error ZeroRoot();
    /// The constructor needs an admin, or nobody could ever grant the anchorer role.
    error ZeroAdmin();

    /// @param admin receives DEFAULT_ADMIN_ROLE (manages roles).
    /// @param anchorer receives ANCHORER_ROLE unless it is the zero address.
    constructor(address admin, address anchorer) {
        if (admin == address(0)) revert ZeroAdmin();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        if (anchorer != address(0)) _grantRole(ANCHORER_ROLE, anchorer);
    }

    /// @notice Anchor the root of the log's tree of `size` leaves.
    /// @param consistencyProof RFC 9162 §2.1.4 proof from the last anchored
    /// (size, root) to (size, root); empty for the first anchor of a log.
    /// @dev Reverts with SizeNotGrowing, EmptyProofRequiredForFirstAnchor, ZeroRoot, or
    /// an RFC9162 error naming the failed proof check (ProofLengthMismatch,
    /// OldRootMismatch, NewRootMismatch); AccessControlUnauthorizedAccount for a caller
    /// without ANCHORER_ROLE.
    function anchor(bytes32 logId, uint64 size, bytes32 root, bytes32[] calldata consistencyProof)
        external
        onlyRole(ANCHORER_ROLE)
    {
        if (root == bytes32(0)) revert ZeroRoot();
        uint64 previous = _latestSize[logId];
        if (size <= previous) revert SizeNotGrowing(previous, size);
        mapping(uint64 => bytes32) storage roots = _roots[logId];
        if (previous == 0) {
            if (consistencyProof.length != 0) revert EmptyProofRequiredForFirstAnchor();
        } else {
            RFC9162.verifyConsistency(previous, size, roots[previous], root, consistencyProof);
        }
        _latestSize[logId] = size;
        roots[size] = root;
        emit Anchored(logId, size, root, previous, msg.sender);
    }

    /// @notice The latest anchored (size, root) of a log; (0, 0) before its first anchor.
    function latest(bytes32 logId) external view returns (uint64 size, bytes32 root) {
        size = _latestSize[logId];
        root = _roots[logId][size];
    }

    /// @notice The root anchored for `logId` at exactly `size`; reverts UnknownAnchor if none.
    function rootAt(bytes32 logId, uint64 size) public view returns (bytes32 root) {
        root = _roots[logId][size];
        if (root == bytes32(0)) revert UnknownAnchor(logId, size);
    }

    /// @notice Whether `leafHash` is at `index` in the log's tree of `size` leaves, checked
    /// with an RFC 9162 §2.1.3 inclusion proof against the root anchored at exactly `size`.
    /// @dev Returns false when a well-formed proof leads to another root. Reverts with
    /// UnknownAnchor (no root anchored at that size), IndexOutOfRange (index >= size) or
    /// ProofLengthMismatch (wrong number of hashes).
    function verifyInclusion(bytes32 logId, uint64 size, bytes32 leafHash, uint64 index, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        return RFC9162.verifyInclusion(index, size, leafHash, proof, rootAt(logId, size));
    }

    /// @notice The RFC 9162 consistency verifier used by `anchor`, for any two trees.
    /// Returns normally if (size2, root2) extends (size1, root1); otherwise reverts with
    /// the error naming the failed check (EmptyOldTree, OldSizeExceedsNewSize,
    /// ProofLengthMismatch, EqualSizeRootMismatch, OldRootMismatch, NewRootMismatch).
    function verifyConsistency(uint64 size1, uint64 size2, bytes32 root1, bytes32 root2, bytes32[] calldata proof)
        external
        view
    {
        RFC9162.verifyConsistency(size1, size2, root1, root2, proof);
    }

    /// @notice The root implied by an RFC 9162 inclusion proof, for any tree; reverts
    /// with IndexOutOfRange or ProofLengthMismatch.
    function rootFromInclusionProof(uint64 index, uint64 size, bytes32 leafHash, bytes32[] calldata proof)
        external
        view
        returns (bytes32)
    {
        return RFC9162.rootFromInclusionProof(index, size, leafHash, proof);
    }
}
