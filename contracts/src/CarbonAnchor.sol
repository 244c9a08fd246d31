// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {RFC9162} from "./RFC9162.sol";

/// @title CarbonAnchor v2: append-only anchoring of RFC 9162 log roots, one anchorer per log
/// @notice One contract serves many logs, each named by a `logId`. The admin
/// (DEFAULT_ADMIN_ROLE, a cold key) registers each log with its own anchorer, its maximum
/// growth per anchor and its revocation window; nothing else may be anchored. For each log
/// the contract keeps the latest anchored size and, at every anchored size, the log root,
/// the state-map root, the previous anchored size and the time. A new root is accepted only
/// from the log's anchorer, if its size grows by at most the log's maximum and an RFC 9162
/// consistency proof from the last anchored (size, root) verifies on chain, so the chain
/// itself refuses any root that rewrites anchored history.
/// @dev A stolen anchorer key can still anchor a fabricated extension (a consistency proof
/// only binds the old tree), after which the honest log no longer extends the chain's root.
/// The growth bound keeps such a claim small (no size 2^62), and the admin can revoke the
/// newest anchors, down to an anchored size, while they are younger than the log's
/// revocation window; older anchors are final even for the admin. Revocations stay visible
/// (events, the `revoked` flag, the per-log count). See docs/decisions.md 69-74.
contract CarbonAnchor is AccessControl {
    /// Latest state of a log; exactly one slot, read and written by every anchor.
    struct LogState {
        address anchorer; // zero: not registered
        uint64 size; // latest anchored size, 0 before the first anchor
        uint32 maxGrowth; // largest size increase one anchor may make (>= 1)
    }

    /// Settings and counters that anchoring does not read.
    struct LogInfo {
        uint32 revocationWindow; // seconds during which the admin may revoke an anchor
        uint32 revoked; // anchors revoked so far
    }

    /// One anchored size.
    struct Anchor {
        bytes32 root; // RFC 9162 log root; zero: never anchored
        bytes32 mapRoot; // state-map root after entries 0..size-1 (zero until the map lands)
        uint64 previousSize; // the anchor this one extended (0 for the first)
        uint40 anchoredAt; // block timestamp
        bool revoked;
    }

    mapping(bytes32 logId => LogState) private _logs;
    mapping(bytes32 logId => LogInfo) private _info;
    mapping(bytes32 logId => mapping(uint64 size => Anchor)) private _anchors;
    /// How many logs name an account as anchorer: such an account may not become admin.
    mapping(address account => uint256 logs) private _anchorerOf;

    event LogRegistered(bytes32 indexed logId, address indexed anchorer, uint32 maxGrowth, uint32 revocationWindow);
    event AnchorerChanged(bytes32 indexed logId, address indexed previous, address indexed anchorer);
    /// Emitted for every accepted root. `previousSize` is 0 for the first anchor of a log.
    event Anchored(
        bytes32 indexed logId,
        uint64 indexed size,
        bytes32 root,
        bytes32 mapRoot,
        uint64 previousSize,
        address indexed anchorer
    );
    /// Emitted for every revoked anchor; the log's latest size is now `previousSize`.
    event AnchorRevoked(bytes32 indexed logId, uint64 indexed size, bytes32 root, uint64 previousSize);

    /// The constructor needs an admin, or nobody could ever register a log.
    error ZeroAdmin();
    /// The log was never registered by the admin, so it cannot be anchored or changed.
    error LogNotRegistered(bytes32 logId);
    /// registerLog for a logId that is already registered.
    error LogAlreadyRegistered(bytes32 logId);
    /// An anchorer must be a real account.
    error ZeroAnchorer();
    /// Admin and anchorer keys are separate: an admin cannot anchor, an anchorer cannot
    /// become admin.
    error AnchorerIsAdmin(address account);
    /// maxGrowth must be at least 1.
    error ZeroMaxGrowth();
    /// The caller is not the anchorer registered for this log.
    error NotAnchorer(bytes32 logId, address caller);
    /// The new size must be greater than the last anchored size (0 before the first anchor).
    error SizeNotGrowing(uint64 previous, uint64 given);
    /// One anchor may grow the log by at most the log's maxGrowth entries.
    error GrowthAboveLimit(uint64 previous, uint64 given, uint32 maxGrowth);
    /// The first anchor of a log has nothing to be consistent with, so it takes no proof.
    error EmptyProofRequiredForFirstAnchor();
    /// No root is anchored for this log at this size.
    error UnknownAnchor(bytes32 logId, uint64 size);
    /// The anchor at this size was revoked by the admin.
    error AnchorRevokedAt(bytes32 logId, uint64 size);
    /// A zero root is reserved to mean "not anchored" (no SHA-256 output is zero in practice).
    error ZeroRoot();
    /// revokeAnchorsAbove: keepSize must be below the latest size ...
    error NothingToRevoke(bytes32 logId, uint64 latest, uint64 keepSize);
    /// ... and one of the log's anchored sizes (or 0).
    error NotAnAnchoredSize(bytes32 logId, uint64 keepSize);
    /// The anchor is older than the log's revocation window: it is final.
    error AnchorFinal(bytes32 logId, uint64 size, uint40 anchoredAt);

    /// @param admin receives DEFAULT_ADMIN_ROLE: registers logs, rotates anchorers, revokes.
    constructor(address admin) {
        if (admin == address(0)) revert ZeroAdmin();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    // ------------------------------------------------------------------ the admin's

    /// @notice Register `logId` with its anchorer, its maximum growth per anchor and the
    /// window (seconds) during which the admin may revoke its anchors.
    function registerLog(bytes32 logId, address anchorer, uint32 maxGrowth, uint32 revocationWindow)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        if (_logs[logId].maxGrowth != 0) revert LogAlreadyRegistered(logId);
        if (maxGrowth == 0) revert ZeroMaxGrowth();
        _checkAnchorer(anchorer);
        _logs[logId] = LogState(anchorer, 0, maxGrowth);
        _info[logId].revocationWindow = revocationWindow;
        ++_anchorerOf[anchorer];
        emit LogRegistered(logId, anchorer, maxGrowth, revocationWindow);
    }

    /// @notice Replace the log's anchorer (a rotated or stolen key).
    function setAnchorer(bytes32 logId, address anchorer) external onlyRole(DEFAULT_ADMIN_ROLE) {
        LogState storage log = _registered(logId);
        _checkAnchorer(anchorer);
        address previous = log.anchorer;
        log.anchorer = anchorer;
        --_anchorerOf[previous];
        ++_anchorerOf[anchorer];
        emit AnchorerChanged(logId, previous, anchorer);
    }

    /// @notice Revoke the log's newest anchors until `keepSize` is its latest again, e.g.
    /// after a stolen anchorer key anchored a fabricated root. `keepSize` must be an
    /// anchored size of the log (or 0: revoke all), and every revoked anchor must be younger
    /// than the log's revocation window. Rotate the anchorer first.
    function revokeAnchorsAbove(bytes32 logId, uint64 keepSize) external onlyRole(DEFAULT_ADMIN_ROLE) {
        LogState storage log = _registered(logId);
        uint64 size = log.size;
        if (keepSize >= size) revert NothingToRevoke(logId, size, keepSize);
        uint32 window = _info[logId].revocationWindow;
        mapping(uint64 => Anchor) storage anchors = _anchors[logId];
        uint32 count;
        while (size > keepSize) {
            Anchor storage a = anchors[size];
            if (block.timestamp > uint256(a.anchoredAt) + window) revert AnchorFinal(logId, size, a.anchoredAt);
            a.revoked = true;
            emit AnchorRevoked(logId, size, a.root, a.previousSize);
            size = a.previousSize;
            ++count;
        }
        if (size != keepSize) revert NotAnAnchoredSize(logId, keepSize);
        log.size = size;
        _info[logId].revoked += count;
    }

    /// An anchorer may never hold the admin role.
    function _grantRole(bytes32 role, address account) internal override returns (bool) {
        if (role == DEFAULT_ADMIN_ROLE && _anchorerOf[account] != 0) revert AnchorerIsAdmin(account);
        return super._grantRole(role, account);
    }

    function _checkAnchorer(address anchorer) private view {
        if (anchorer == address(0)) revert ZeroAnchorer();
        if (hasRole(DEFAULT_ADMIN_ROLE, anchorer)) revert AnchorerIsAdmin(anchorer);
    }

    function _registered(bytes32 logId) private view returns (LogState storage log) {
        log = _logs[logId];
        if (log.maxGrowth == 0) revert LogNotRegistered(logId);
    }

    // -------------------------------------------------------------- the anchorer's

    /// @notice Anchor the root of the log's tree of `size` leaves and the state-map root
    /// after those entries.
    /// @param consistencyProof RFC 9162 §2.1.4 proof from the last anchored
    /// (size, root) to (size, root); empty for the first anchor of a log.
    /// @dev Reverts with LogNotRegistered, NotAnchorer, ZeroRoot, SizeNotGrowing,
    /// GrowthAboveLimit, EmptyProofRequiredForFirstAnchor, or an RFC9162 error naming the
    /// failed proof check (ProofLengthMismatch, OldRootMismatch, NewRootMismatch).
    function anchor(bytes32 logId, uint64 size, bytes32 root, bytes32 mapRoot, bytes32[] calldata consistencyProof)
        external
    {
        LogState memory log = _logs[logId];
        if (log.maxGrowth == 0) revert LogNotRegistered(logId);
        if (msg.sender != log.anchorer) revert NotAnchorer(logId, msg.sender);
        if (root == bytes32(0)) revert ZeroRoot();
        uint64 previous = log.size;
        if (size <= previous) revert SizeNotGrowing(previous, size);
        if (size - previous > log.maxGrowth) revert GrowthAboveLimit(previous, size, log.maxGrowth);
        mapping(uint64 => Anchor) storage anchors = _anchors[logId];
        if (previous == 0) {
            if (consistencyProof.length != 0) revert EmptyProofRequiredForFirstAnchor();
        } else {
            RFC9162.verifyConsistency(previous, size, anchors[previous].root, root, consistencyProof);
        }
        _logs[logId].size = size;
        anchors[size] = Anchor(root, mapRoot, previous, uint40(block.timestamp), false);
        emit Anchored(logId, size, root, mapRoot, previous, msg.sender);
    }

    // ----------------------------------------------------------------------- views

    /// @notice The log's anchorer, limits, latest size and revocation count; anchorer zero
    /// (and maxGrowth 0) for a log that is not registered.
    function logConfig(bytes32 logId)
        external
        view
        returns (address anchorer, uint32 maxGrowth, uint32 revocationWindow, uint64 size, uint32 revoked)
    {
        LogState memory log = _logs[logId];
        LogInfo memory info = _info[logId];
        return (log.anchorer, log.maxGrowth, info.revocationWindow, log.size, info.revoked);
    }

    /// @notice The latest anchored (size, root) of a log; (0, 0) before its first anchor.
    function latest(bytes32 logId) external view returns (uint64 size, bytes32 root) {
        size = _logs[logId].size;
        root = size == 0 ? bytes32(0) : _anchors[logId][size].root;
    }

    /// @notice The anchor at exactly `size`: log root, map root, the size it extended and
    /// its block time. Reverts UnknownAnchor if none, AnchorRevokedAt if it was revoked.
    function anchorAt(bytes32 logId, uint64 size)
        public
        view
        returns (bytes32 root, bytes32 mapRoot, uint64 previousSize, uint40 anchoredAt)
    {
        Anchor storage a = _anchors[logId][size];
        root = a.root;
        if (root == bytes32(0)) revert UnknownAnchor(logId, size);
        if (a.revoked) revert AnchorRevokedAt(logId, size);
        return (root, a.mapRoot, a.previousSize, a.anchoredAt);
    }

    /// @notice The root anchored for `logId` at exactly `size`; reverts UnknownAnchor if
    /// none, AnchorRevokedAt if it was revoked.
    function rootAt(bytes32 logId, uint64 size) public view returns (bytes32 root) {
        (root,,,) = anchorAt(logId, size);
    }

    /// @notice Whether `leafHash` is at `index` in the log's tree of `size` leaves, checked
    /// with an RFC 9162 §2.1.3 inclusion proof against the root anchored at exactly `size`.
    /// @dev Returns false when a well-formed proof leads to another root. Reverts with
    /// UnknownAnchor or AnchorRevokedAt (no valid root at that size), IndexOutOfRange
    /// (index >= size) or ProofLengthMismatch (wrong number of hashes).
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
