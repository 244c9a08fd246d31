// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test, console} from "forge-std/Test.sol";
import {CarbonAnchor} from "../src/CarbonAnchor.sol";

/// A tree whose leaves all have the same hash, so MTH(D[lo:hi]) depends only on
/// hi - lo and the roots and consistency proofs of trees with up to 2^63 leaves take
/// O(log^2 n) hashes to build. The verifier's cost depends only on the proof's
/// length, so this measures real anchors of huge logs.
library UniformTree {
    function nodeHash(bytes32 left, bytes32 right) internal pure returns (bytes32) {
        return sha256(abi.encodePacked(bytes1(0x01), left, right));
    }

    /// perfect[k] = MTH of 2^k leaves.
    function perfect(bytes32 leaf) internal pure returns (bytes32[64] memory p) {
        p[0] = leaf;
        for (uint256 k = 1; k < 64; ++k) {
            p[k] = nodeHash(p[k - 1], p[k - 1]);
        }
    }

    function _log2(uint256 x) private pure returns (uint256 r) {
        while (x > 1) {
            x >>= 1;
            ++r;
        }
    }

    function _split(uint256 n) private pure returns (uint256) {
        return 1 << _log2(n - 1);
    }

    /// MTH of n leaves (n >= 1).
    function root(bytes32[64] memory p, uint256 n) internal pure returns (bytes32) {
        if (n & (n - 1) == 0) return p[_log2(n)];
        uint256 k = _split(n);
        return nodeHash(p[_log2(k)], root(p, n - k));
    }

    /// PROOF(m, D[n]) (RFC 9162 §2.1.4.1) for 0 < m < n.
    function consistencyProof(bytes32[64] memory p, uint256 m, uint256 n) internal pure returns (bytes32[] memory out) {
        out = new bytes32[](130);
        uint256 len = _subproof(p, m, n, true, out, 0);
        assembly {
            mstore(out, len)
        }
    }

    function _subproof(bytes32[64] memory p, uint256 m, uint256 n, bool b, bytes32[] memory out, uint256 len)
        private
        pure
        returns (uint256)
    {
        if (m == n) {
            if (b) return len;
            out[len] = root(p, n);
            return len + 1;
        }
        uint256 k = _split(n);
        if (m <= k) {
            len = _subproof(p, m, k, b, out, len);
            out[len] = root(p, n - k);
        } else {
            len = _subproof(p, m - k, n - k, false, out, len);
            out[len] = root(p, k);
        }
        return len + 1;
    }
}

/// Gas per anchor. Each measurement anchors the old size first, then cools the
/// contract's storage (as at the start of a new transaction) and measures the growing
/// anchor. `tx` adds the intrinsic cost (21000 + calldata at 4/16 gas per zero/non-zero
/// byte) to the execution gas: within about 1,000 gas above the gasUsed of the same
/// transactions on anvil and on py-evm (the measured call includes the CALL overhead).
/// Run with `forge test --match-contract Gas -vv` to print the table.
contract CarbonAnchorGasTest is Test {
    uint256 internal constant TARGET = 200_000;
    CarbonAnchor internal anchorC;
    address internal anchorer = makeAddr("anchorer");
    bytes32[64] internal p;
    uint256 internal logCount;

    function setUp() public {
        anchorC = new CarbonAnchor(address(this));
        bytes32[64] memory perfect = UniformTree.perfect(sha256(abi.encodePacked(bytes1(0x00), "reading")));
        p = perfect;
    }

    function _calldataGas(bytes memory data) internal pure returns (uint256 g) {
        for (uint256 i; i < data.length; ++i) {
            g += data[i] == 0 ? 4 : 16;
        }
    }

    function _call(bytes memory data) internal returns (uint256 execGas) {
        vm.cool(address(anchorC));
        uint256 size = address(anchorC).code.length; // re-warm the account only, as a tx's `to` is
        assertGt(size, 0);
        vm.prank(anchorer);
        uint256 before = gasleft();
        (bool ok, bytes memory ret) = address(anchorC).call(data);
        execGas = before - gasleft();
        if (!ok) {
            assembly {
                revert(add(ret, 0x20), mload(ret))
            }
        }
    }

    /// A fresh log, registered for `anchorer` with the widest growth bound.
    function _newLog() internal returns (bytes32 logId) {
        logId = bytes32(++logCount);
        anchorC.registerLog(logId, anchorer, type(uint32).max, 7 days);
    }

    /// A non-zero map root (the worst case: its slot goes from zero to non-zero).
    function _mapRoot(uint256 n) internal pure returns (bytes32) {
        return keccak256(abi.encode("map", n));
    }

    /// Puts the log at size m with root `root` as if it had been anchored there step by step
    /// (a first anchor may not exceed the growth bound, and 2^32 steps are too many to run).
    /// Slots from `forge inspect src/CarbonAnchor.sol:CarbonAnchor storageLayout`: _logs is
    /// mapping 1, _anchors mapping 3; the result is checked through the contract's views.
    function _seed(bytes32 logId, uint256 m, bytes32 root) internal {
        bytes32 logSlot = keccak256(abi.encode(logId, uint256(1)));
        uint256 state = uint256(uint160(anchorer)) | (m << 160) | (uint256(type(uint32).max) << 224);
        vm.store(address(anchorC), logSlot, bytes32(state));
        bytes32 anchorSlot = keccak256(abi.encode(m, keccak256(abi.encode(logId, uint256(3)))));
        vm.store(address(anchorC), anchorSlot, root);
        (uint64 size, bytes32 latestRoot) = anchorC.latest(logId);
        assertEq(size, m);
        assertEq(latestRoot, root);
        assertEq(anchorC.rootAt(logId, uint64(m)), root);
    }

    /// Gas of the first anchor of a fresh log at size n.
    function _first(uint256 n) internal returns (uint256 txGas) {
        bytes32[64] memory perfect = p;
        bytes32 logId = _newLog();
        bytes memory data = abi.encodeCall(
            CarbonAnchor.anchor, (logId, uint64(n), UniformTree.root(perfect, n), _mapRoot(n), new bytes32[](0))
        );
        uint256 execGas = _call(data);
        txGas = 21000 + _calldataGas(data) + execGas;
        console.log("first anchor  size %d: exec %d, tx %d", n, execGas, txGas);
    }

    /// Gas of anchoring size n after size m.
    function _grow(uint256 m, uint256 n) internal returns (uint256 txGas) {
        bytes32[64] memory perfect = p;
        bytes32 logId = _newLog();
        bytes32 oldRoot = UniformTree.root(perfect, m); // (before prank: sha256 is a call)
        if (m <= type(uint32).max) {
            vm.prank(anchorer);
            anchorC.anchor(logId, uint64(m), oldRoot, _mapRoot(m), new bytes32[](0));
        } else {
            _seed(logId, m, oldRoot);
        }
        bytes32[] memory proof = UniformTree.consistencyProof(perfect, m, n);
        bytes memory data =
            abi.encodeCall(CarbonAnchor.anchor, (logId, uint64(n), UniformTree.root(perfect, n), _mapRoot(n), proof));
        uint256 execGas = _call(data);
        txGas = 21000 + _calldataGas(data) + execGas;
        console.log("grow %d -> %d", m, n);
        console.log("    proof hashes %d: exec %d, tx %d", proof.length, execGas, txGas);
        assertLe(txGas, TARGET, "gas per anchor above target");
    }

    function test_Gas_PerAnchor() public {
        assertLe(_first(1000), TARGET);
        // Batches of 10^3 .. 10^6 readings on logs of growing size.
        for (uint256 b = 1000; b <= 1_000_000; b *= 10) {
            _grow(b, 2 * b);
            _grow(7 * b + 3, 8 * b + 3);
            _grow(100 * b + 1, 101 * b + 1);
        }
        // One entry at a time, the largest growth one anchor may make (2^32 - 1), and the
        // longest proofs any uint64 sizes have (65 hashes, e.g. 2^64 - 3 -> 2^64 - 1).
        _grow(1000, 1001);
        _grow(1, 1 << 32);
        _grow((1 << 62) - 1, 1 << 62);
        _grow((1 << 62) + 1, (1 << 62) + (1 << 32) - 1);
        _grow(type(uint64).max - 2, type(uint64).max);
        _grow(type(uint64).max - 4, type(uint64).max - 1);
        _grow(type(uint64).max - (1 << 32) + 1, type(uint64).max);
    }
}
