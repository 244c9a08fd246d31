// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title RFC 9162 Merkle proof verifiers (SHA-256)
/// @notice Pure verifiers for RFC 9162 §2.1.3.2 inclusion proofs and §2.1.4.2
/// consistency proofs, hashing with the SHA-256 precompile:
/// leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right).
/// @dev This is the same algorithm as carbonledger's Python verifier
/// (`ledger/merkle.py`), including the rules it shares with the transparency-dev
/// verifier: a consistency proof from size 0 is an error, equal sizes need an
/// empty proof and equal roots, and a proof must have exactly the number of hashes
/// its sizes call for. Sizes and indices are uint64; every loop reads the proof from
/// calldata and nothing is allocated in memory.
library RFC9162 {
    /// A consistency proof from the empty tree proves nothing (size1 == 0).
    error EmptyOldTree();
    /// A consistency proof needs size1 <= size2.
    error OldSizeExceedsNewSize(uint64 size1, uint64 size2);
    /// The proof does not have the number of hashes its sizes (or index) call for.
    error ProofLengthMismatch(uint256 expected, uint256 got);
    /// Equal sizes, empty proof, but the two roots differ.
    error EqualSizeRootMismatch();
    /// The consistency proof does not lead to the old root.
    error OldRootMismatch();
    /// The consistency proof does not lead to the new root.
    error NewRootMismatch();
    /// An inclusion proof was given for an index outside the tree.
    error IndexOutOfRange(uint64 index, uint64 size);

    /// @notice RFC 9162 §2.1.1 interior node hash: SHA-256(0x01 || left || right).
    /// @dev Calls the SHA-256 precompile (address 0x02) directly on 65 bytes of scratch
    /// memory past the free memory pointer. Same result as
    /// `sha256(abi.encodePacked(bytes1(0x01), left, right))`, which allocates fresh
    /// memory at every call; this saves about 40,000 gas on a 63-hash proof. The
    /// staticcall makes the verifiers `view` rather than `pure`.
    function hashNode(bytes32 left, bytes32 right) internal view returns (bytes32 h) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore8(ptr, 0x01)
            mstore(add(ptr, 0x01), left)
            mstore(add(ptr, 0x21), right)
            if iszero(staticcall(gas(), 0x02, ptr, 0x41, 0x00, 0x20)) { revert(0, 0) }
            h := mload(0x00)
        }
    }

    /// @notice RFC 9162 §2.1.1 leaf hash: SHA-256(0x00 || data).
    function hashLeaf(bytes memory data) internal pure returns (bytes32) {
        return sha256(abi.encodePacked(bytes1(0x00), data));
    }

    /// @notice The root implied by an inclusion proof (RFC 9162 §2.1.3.2).
    /// @dev Reverts with `IndexOutOfRange` when index >= size and with
    /// `ProofLengthMismatch` when the proof has the wrong number of hashes.
    function rootFromInclusionProof(uint64 index, uint64 size, bytes32 leafHash, bytes32[] calldata proof)
        internal
        view
        returns (bytes32 root)
    {
        if (index >= size) revert IndexOutOfRange(index, size);
        uint256 expected = pathLength(index, size);
        if (proof.length != expected) revert ProofLengthMismatch(expected, proof.length);
        uint256 fn = index;
        uint256 sn = uint256(size) - 1;
        root = leafHash;
        for (uint256 i; i < expected; ++i) {
            bytes32 p = proof[i];
            if (fn & 1 == 1 || fn == sn) {
                root = hashNode(p, root);
                // A right-edge node with no right sibling: climb until it is a right child.
                while (fn & 1 == 0 && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
            } else {
                root = hashNode(root, p);
            }
            fn >>= 1;
            sn >>= 1;
        }
        // The exact length check guarantees sn == 0 here (the path reached the root).
    }

    /// @notice Whether `leafHash` is at `index` in the tree of `size` leaves with `root`.
    /// @dev Returns false only when a well-formed proof leads to another root; reverts
    /// (naming the check) on an index outside the tree or a proof of the wrong length.
    function verifyInclusion(uint64 index, uint64 size, bytes32 leafHash, bytes32[] calldata proof, bytes32 root)
        internal
        view
        returns (bool)
    {
        return rootFromInclusionProof(index, size, leafHash, proof) == root;
    }

    /// @notice Checks that the tree (size2, root2) is an append-only extension of the
    /// tree (size1, root1), following RFC 9162 §2.1.4.2. Reverts with an error that
    /// names the failed check; returns normally when the proof verifies.
    function verifyConsistency(uint64 size1, uint64 size2, bytes32 root1, bytes32 root2, bytes32[] calldata proof)
        internal
        view
    {
        if (size1 == 0) revert EmptyOldTree();
        if (size1 > size2) revert OldSizeExceedsNewSize(size1, size2);
        if (size1 == size2) {
            if (proof.length != 0) revert ProofLengthMismatch(0, proof.length);
            if (root1 != root2) revert EqualSizeRootMismatch();
            return;
        }
        // Skip the levels where the old tree's last leaf is a right child inside a
        // complete subtree both trees share: the proof starts above them.
        uint256 shift = trailingZeros(size1);
        uint256 fn = (uint256(size1) - 1) >> shift;
        uint256 sn = (uint256(size2) - 1) >> shift;
        // When size1 is a power of two the old root itself is the first node of the path.
        bool seededByOldRoot = fn == 0;
        uint256 expected = pathLength(fn, sn + 1);
        if (!seededByOldRoot) ++expected;
        if (proof.length != expected) revert ProofLengthMismatch(expected, proof.length);

        uint256 i;
        bytes32 fr;
        if (seededByOldRoot) {
            fr = root1;
        } else {
            fr = proof[0];
            i = 1;
        }
        bytes32 sr = fr;
        for (; i < expected; ++i) {
            bytes32 c = proof[i];
            if (fn & 1 == 1 || fn == sn) {
                fr = hashNode(c, fr);
                sr = hashNode(c, sr);
                while (fn & 1 == 0 && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
            } else {
                sr = hashNode(sr, c);
            }
            fn >>= 1;
            sn >>= 1;
        }
        if (fr != root1) revert OldRootMismatch();
        if (sr != root2) revert NewRootMismatch();
    }

    /// @notice Number of hashes in an inclusion proof for `index` in a tree of `size`
    /// leaves (index < size): the levels where the paths to `index` and `size - 1`
    /// differ, plus the right-edge levels above them where `index` has a left sibling.
    function pathLength(uint256 index, uint256 size) internal pure returns (uint256) {
        unchecked {
            uint256 inner = bitLength(index ^ (size - 1));
            return inner + popCount(index >> inner);
        }
    }

    /// @dev Number of bits needed to write x (0 for 0); x < 2^64.
    function bitLength(uint256 x) internal pure returns (uint256 n) {
        unchecked {
            if (x >> 32 != 0) {
                x >>= 32;
                n = 32;
            }
            if (x >> 16 != 0) {
                x >>= 16;
                n += 16;
            }
            if (x >> 8 != 0) {
                x >>= 8;
                n += 8;
            }
            if (x >> 4 != 0) {
                x >>= 4;
                n += 4;
            }
            if (x >> 2 != 0) {
                x >>= 2;
                n += 2;
            }
            if (x >> 1 != 0) {
                x >>= 1;
                n += 1;
            }
            n += x;
        }
    }

    /// @dev Number of set bits in x; x < 2^64.
    function popCount(uint256 x) internal pure returns (uint256) {
        unchecked {
            x -= (x >> 1) & 0x5555555555555555;
            x = (x & 0x3333333333333333) + ((x >> 2) & 0x3333333333333333);
            x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0f;
            return ((x * 0x0101010101010101) >> 56) & 0xff;
        }
    }

    /// @dev Number of trailing zero bits of x; 0 < x < 2^64.
    function trailingZeros(uint256 x) internal pure returns (uint256) {
        unchecked {
            return bitLength(x & (~x + 1)) - 1;
        }
    }
}
