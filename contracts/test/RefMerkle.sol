// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice A reference RFC 9162 Merkle tree for tests, written straight from the
/// recursive definitions of RFC 9162 §2.1.1 (MTH), §2.1.3.1 (PATH) and §2.1.4.1
/// (PROOF/SUBPROOF) over an in-memory array of leaf hashes. It shares no code with
/// the iterative verifiers in src/RFC9162.sol, which it is used to check.
library RefMerkle {
    /// Leaf hashes of a tree of n leaves; leaf i's data is abi.encode(seed, i).
    function leaves(uint256 n, uint256 seed) internal pure returns (bytes32[] memory h) {
        h = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            h[i] = leafHash(abi.encode(seed, i));
        }
    }

    function leafHash(bytes memory data) internal pure returns (bytes32) {
        return sha256(abi.encodePacked(bytes1(0x00), data));
    }

    function nodeHash(bytes32 left, bytes32 right) internal pure returns (bytes32) {
        return sha256(abi.encodePacked(bytes1(0x01), left, right));
    }

    /// The largest power of two strictly smaller than n (n > 1).
    function split(uint256 n) internal pure returns (uint256 k) {
        require(n > 1, "split needs n > 1");
        k = 1;
        while (k << 1 < n) k <<= 1;
    }

    /// MTH(D[lo:hi]).
    function mth(bytes32[] memory h, uint256 lo, uint256 hi) internal pure returns (bytes32) {
        uint256 n = hi - lo;
        if (n == 0) return sha256("");
        if (n == 1) return h[lo];
        uint256 k = split(n);
        return nodeHash(mth(h, lo, lo + k), mth(h, lo + k, hi));
    }

    /// Root of the tree made of the first n leaves.
    function root(bytes32[] memory h, uint256 n) internal pure returns (bytes32) {
        return mth(h, 0, n);
    }

    /// PATH(m, D[0:n]): the inclusion proof for leaf m in the tree of the first n leaves.
    function inclusionProof(bytes32[] memory h, uint256 m, uint256 n) internal pure returns (bytes32[] memory out) {
        out = new bytes32[](64);
        uint256 len = _path(h, m, 0, n, out, 0);
        assembly {
            mstore(out, len)
        }
    }

    /// PROOF(m, D[0:n]) = SUBPROOF(m, D[0:n], true): the consistency proof from the
    /// tree of the first m leaves to the tree of the first n leaves (0 < m <= n).
    function consistencyProof(bytes32[] memory h, uint256 m, uint256 n) internal pure returns (bytes32[] memory out) {
        out = new bytes32[](130);
        uint256 len = _subproof(h, m, 0, n, true, out, 0);
        assembly {
            mstore(out, len)
        }
    }

    function _path(bytes32[] memory h, uint256 m, uint256 lo, uint256 hi, bytes32[] memory out, uint256 len)
        private
        pure
        returns (uint256)
    {
        uint256 n = hi - lo;
        if (n == 1) return len;
        uint256 k = split(n);
        if (m < k) {
            len = _path(h, m, lo, lo + k, out, len);
            out[len] = mth(h, lo + k, hi);
        } else {
            len = _path(h, m - k, lo + k, hi, out, len);
            out[len] = mth(h, lo, lo + k);
        }
        return len + 1;
    }

    function _subproof(bytes32[] memory h, uint256 m, uint256 lo, uint256 hi, bool b, bytes32[] memory out, uint256 len)
        private
        pure
        returns (uint256)
    {
        uint256 n = hi - lo;
        if (m == n) {
            if (b) return len;
            out[len] = mth(h, lo, hi);
            return len + 1;
        }
        uint256 k = split(n);
        if (m <= k) {
            len = _subproof(h, m, lo, lo + k, b, out, len);
            out[len] = mth(h, lo + k, hi);
        } else {
            len = _subproof(h, m - k, lo + k, hi, false, out, len);
            out[len] = mth(h, lo, lo + k);
        }
        return len + 1;
    }

    /// |PATH(m, D[n])| from the recursion alone (no hashing), for any n up to 2^64.
    function pathLength(uint256 m, uint256 n) internal pure returns (uint256) {
        if (n == 1) return 0;
        uint256 k = split(n);
        return m < k ? pathLength(m, k) + 1 : pathLength(m - k, n - k) + 1;
    }

    /// |SUBPROOF(m, D[n], b)| from the recursion alone, for any n up to 2^64.
    function subproofLength(uint256 m, uint256 n, bool b) internal pure returns (uint256) {
        if (m == n) return b ? 0 : 1;
        uint256 k = split(n);
        return m <= k ? subproofLength(m, k, b) + 1 : subproofLength(m - k, n - k, false) + 1;
    }
}
