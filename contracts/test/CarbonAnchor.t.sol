// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "forge-std/Test.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {CarbonAnchor} from "../src/CarbonAnchor.sol";
import {RFC9162} from "../src/RFC9162.sol";
import {RefMerkle} from "./RefMerkle.sol";

/// Shared set-up and helpers.
abstract contract AnchorFixture is Test {
    CarbonAnchor internal anchorC;
    address internal admin = makeAddr("admin");
    address internal anchorer = makeAddr("anchorer");
    address internal stranger = makeAddr("stranger");
    bytes32 internal constant LOG = keccak256("carbonledger/test-log");
    bytes32 internal constant OTHER_LOG = keccak256("carbonledger/other-log");

    uint32 internal constant WINDOW = 7 days;
    mapping(address contractAddress => mapping(bytes32 logId => bool)) internal _registeredHere;

    function setUp() public virtual {
        anchorC = new CarbonAnchor(admin);
        _ensureRegistered(LOG);
        _ensureRegistered(OTHER_LOG);
    }

    /// The map root the tests anchor beside the log root at `size` (any non-zero value).
    function _mapRoot(uint256 size) internal pure returns (bytes32) {
        return keccak256(abi.encode("map", size));
    }

    /// Registers `logId` for `anchorer` with the widest growth bound, unless it is registered.
    /// (Tracked here, not asked of the contract: an extra call would consume vm.expectRevert.)
    function _ensureRegistered(bytes32 logId) internal {
        if (_registeredHere[address(anchorC)][logId]) return;
        _registeredHere[address(anchorC)][logId] = true;
        vm.prank(admin);
        anchorC.registerLog(logId, anchorer, type(uint32).max, WINDOW);
    }

    function _none() internal pure returns (bytes32[] memory) {
        return new bytes32[](0);
    }

    function _anchor(bytes32 logId, uint256 size, bytes32 root, bytes32[] memory proof) internal {
        _ensureRegistered(logId);
        vm.prank(anchorer);
        anchorC.anchor(logId, uint64(size), root, _mapRoot(size), proof);
    }

    /// Anchors the first `m` leaves of `h`, then the first `n`, with the reference proof.
    function _anchorGrowth(bytes32 logId, bytes32[] memory h, uint256 m, uint256 n) internal {
        _anchor(logId, m, RefMerkle.root(h, m), _none());
        _anchor(logId, n, RefMerkle.root(h, n), RefMerkle.consistencyProof(h, m, n));
    }

    function _truncate(bytes32[] memory proof) internal pure returns (bytes32[] memory out) {
        out = new bytes32[](proof.length - 1);
        for (uint256 i; i < out.length; ++i) {
            out[i] = proof[i];
        }
    }

    function _extend(bytes32[] memory proof, bytes32 extra) internal pure returns (bytes32[] memory out) {
        out = new bytes32[](proof.length + 1);
        for (uint256 i; i < proof.length; ++i) {
            out[i] = proof[i];
        }
        out[proof.length] = extra;
    }

    function _copy(bytes32[] memory proof) internal pure returns (bytes32[] memory out) {
        out = new bytes32[](proof.length);
        for (uint256 i; i < proof.length; ++i) {
            out[i] = proof[i];
        }
    }

    function _selector(bytes memory revertData) internal pure returns (bytes4 sel) {
        if (revertData.length < 4) return bytes4(0);
        assembly {
            sel := mload(add(revertData, 0x20))
        }
    }

    /// The anchor call reverts with OldRootMismatch or NewRootMismatch.
    function _assertAnchorRootMismatch(bytes32 logId, uint256 size, bytes32 root, bytes32[] memory proof) internal {
        _ensureRegistered(logId);
        vm.prank(anchorer);
        try anchorC.anchor(logId, uint64(size), root, _mapRoot(size), proof) {
            revert("anchor accepted a root that does not extend the anchored one");
        } catch (bytes memory err) {
            bytes4 sel = _selector(err);
            assertTrue(
                sel == RFC9162.OldRootMismatch.selector || sel == RFC9162.NewRootMismatch.selector,
                "expected OldRootMismatch or NewRootMismatch"
            );
        }
    }

    /// verifyConsistency reverts with OldRootMismatch or NewRootMismatch.
    function _assertConsistencyRootMismatch(uint256 m, uint256 n, bytes32 root1, bytes32 root2, bytes32[] memory proof)
        internal
        view
    {
        try anchorC.verifyConsistency(uint64(m), uint64(n), root1, root2, proof) {
            revert("a tampered consistency proof verified");
        } catch (bytes memory err) {
            bytes4 sel = _selector(err);
            assertTrue(
                sel == RFC9162.OldRootMismatch.selector || sel == RFC9162.NewRootMismatch.selector,
                "expected OldRootMismatch or NewRootMismatch"
            );
        }
    }
}

contract CarbonAnchorTest is AnchorFixture {
    // ------------------------------------------------------------------ roles

    function test_Constructor_GrantsAdminOnly() public view {
        assertTrue(anchorC.hasRole(anchorC.DEFAULT_ADMIN_ROLE(), admin));
        assertFalse(anchorC.hasRole(anchorC.DEFAULT_ADMIN_ROLE(), anchorer));
    }

    function test_Constructor_RejectsZeroAdmin() public {
        vm.expectRevert(CarbonAnchor.ZeroAdmin.selector);
        new CarbonAnchor(address(0));
    }

    // ------------------------------------------------------------- first anchor

    function test_FirstAnchor() public {
        bytes32[] memory h = RefMerkle.leaves(5, 1);
        bytes32 root = RefMerkle.root(h, 5);
        (uint64 size0, bytes32 root0) = anchorC.latest(LOG);
        assertEq(size0, 0);
        assertEq(root0, bytes32(0));

        vm.expectEmit(true, true, true, true, address(anchorC));
        emit CarbonAnchor.Anchored(LOG, 5, root, _mapRoot(5), 0, anchorer);
        _anchor(LOG, 5, root, _none());

        (uint64 size, bytes32 latestRoot) = anchorC.latest(LOG);
        assertEq(size, 5);
        assertEq(latestRoot, root);
        assertEq(anchorC.rootAt(LOG, 5), root);
        // Other logs are untouched.
        (size0, root0) = anchorC.latest(OTHER_LOG);
        assertEq(size0, 0);
    }

    function test_FirstAnchor_RejectsProof() public {
        bytes32[] memory proof = new bytes32[](1);
        vm.expectRevert(CarbonAnchor.EmptyProofRequiredForFirstAnchor.selector);
        _anchor(LOG, 5, keccak256("root"), proof);
    }

    function test_Rejects_ZeroSize() public {
        bytes32 emptyRoot = sha256("");
        vm.expectRevert(abi.encodeWithSelector(CarbonAnchor.SizeNotGrowing.selector, 0, 0));
        _anchor(LOG, 0, emptyRoot, _none());
    }

    function test_Rejects_ZeroRoot() public {
        vm.expectRevert(CarbonAnchor.ZeroRoot.selector);
        _anchor(LOG, 1, bytes32(0), _none());
    }

    // ---------------------------------------------------------- growing anchors

    function test_GrowingAnchors() public {
        bytes32[] memory h = RefMerkle.leaves(64, 7);
        uint16[10] memory sizes = [uint16(1), 2, 3, 4, 7, 8, 13, 32, 33, 64];
        uint256 previous;
        for (uint256 i; i < sizes.length; ++i) {
            uint256 n = sizes[i];
            bytes32 root = RefMerkle.root(h, n);
            bytes32[] memory proof = previous == 0 ? _none() : RefMerkle.consistencyProof(h, previous, n);
            vm.expectEmit(true, true, true, true, address(anchorC));
            emit CarbonAnchor.Anchored(LOG, uint64(n), root, _mapRoot(n), uint64(previous), anchorer);
            _anchor(LOG, n, root, proof);
            (uint64 size, bytes32 latestRoot) = anchorC.latest(LOG);
            assertEq(size, n);
            assertEq(latestRoot, root);
            previous = n;
        }
        // Every anchored size keeps its root; sizes in between were never anchored.
        for (uint256 i; i < sizes.length; ++i) {
            assertEq(anchorC.rootAt(LOG, sizes[i]), RefMerkle.root(h, sizes[i]));
        }
        vm.expectRevert(abi.encodeWithSelector(CarbonAnchor.UnknownAnchor.selector, LOG, uint64(5)));
        anchorC.rootAt(LOG, 5);
    }

    function test_LogsAreIndependent() public {
        bytes32[] memory a = RefMerkle.leaves(9, 1);
        bytes32[] memory b = RefMerkle.leaves(9, 2);
        _anchorGrowth(LOG, a, 3, 9);
        // OTHER_LOG's first anchor needs no proof even though LOG is at size 9.
        _anchor(OTHER_LOG, 2, RefMerkle.root(b, 2), _none());
        _anchor(OTHER_LOG, 9, RefMerkle.root(b, 9), RefMerkle.consistencyProof(b, 2, 9));
        assertEq(anchorC.rootAt(LOG, 9), RefMerkle.root(a, 9));
        assertEq(anchorC.rootAt(OTHER_LOG, 9), RefMerkle.root(b, 9));
    }

    // --------------------------------------------------------------- rejections

    function test_Rejects_SameSize() public {
        bytes32[] memory h = RefMerkle.leaves(5, 1);
        bytes32 root = RefMerkle.root(h, 5);
        _anchor(LOG, 5, root, _none());
        vm.expectRevert(abi.encodeWithSelector(CarbonAnchor.SizeNotGrowing.selector, 5, 5));
        _anchor(LOG, 5, root, _none());
    }

    function test_Rejects_SmallerSize() public {
        bytes32[] memory h = RefMerkle.leaves(5, 1);
        _anchor(LOG, 5, RefMerkle.root(h, 5), _none());
        bytes32 root3 = RefMerkle.root(h, 3);
        vm.expectRevert(abi.encodeWithSelector(CarbonAnchor.SizeNotGrowing.selector, 5, 3));
        _anchor(LOG, 3, root3, _none());
    }

    function test_Rejects_EmptyProofAfterFirstAnchor() public {
        bytes32[] memory h = RefMerkle.leaves(7, 1);
        _anchor(LOG, 3, RefMerkle.root(h, 3), _none());
        uint256 expected = RefMerkle.consistencyProof(h, 3, 7).length;
        bytes32 root7 = RefMerkle.root(h, 7);
        vm.expectRevert(abi.encodeWithSelector(RFC9162.ProofLengthMismatch.selector, expected, 0));
        _anchor(LOG, 7, root7, _none());
    }

    function test_Rejects_ForgedProof() public {
        bytes32[] memory h = RefMerkle.leaves(11, 1);
        _anchor(LOG, 6, RefMerkle.root(h, 6), _none());
        bytes32[] memory proof = RefMerkle.consistencyProof(h, 6, 11);
        bytes32 root = RefMerkle.root(h, 11);
        for (uint256 i; i < proof.length; ++i) {
            bytes32[] memory forged = _copy(proof);
            forged[i] ^= bytes32(uint256(1) << (i * 37 % 256));
            _assertAnchorRootMismatch(LOG, 11, root, forged);
        }
        // A correct proof for another new root.
        vm.expectRevert(RFC9162.NewRootMismatch.selector);
        _anchor(LOG, 11, keccak256("not the root"), proof);
        (uint64 size,) = anchorC.latest(LOG);
        assertEq(size, 6);
    }

    function test_Rejects_ProofForOtherSizes() public {
        bytes32[] memory h = RefMerkle.leaves(16, 1);
        _anchor(LOG, 5, RefMerkle.root(h, 5), _none());
        // Proofs of the right length for 5 -> 13 that prove m -> 13 for another m.
        uint256 want = RefMerkle.consistencyProof(h, 5, 13).length;
        uint256 tried;
        for (uint256 m = 1; m < 13; ++m) {
            bytes32[] memory other = RefMerkle.consistencyProof(h, m, 13);
            if (m == 5 || other.length != want) continue;
            _assertAnchorRootMismatch(LOG, 13, RefMerkle.root(h, 13), other);
            ++tried;
        }
        assertGt(tried, 0);
    }

    function test_Rejects_TruncatedAndExtendedProof() public {
        bytes32[] memory h = RefMerkle.leaves(13, 1);
        _anchor(LOG, 5, RefMerkle.root(h, 5), _none());
        bytes32[] memory proof = RefMerkle.consistencyProof(h, 5, 13);
        bytes32 root = RefMerkle.root(h, 13);
        vm.expectRevert(abi.encodeWithSelector(RFC9162.ProofLengthMismatch.selector, proof.length, proof.length - 1));
        _anchor(LOG, 13, root, _truncate(proof));
        vm.expectRevert(abi.encodeWithSelector(RFC9162.ProofLengthMismatch.selector, proof.length, proof.length + 1));
        _anchor(LOG, 13, root, _extend(proof, bytes32(0)));
        _anchor(LOG, 13, root, proof); // and the honest one is accepted
    }

    /// A log that rewrites an anchored entry cannot anchor its new root, whichever
    /// proof it presents: its own (honest for the rewritten tree) or the original one.
    function test_Rejects_RewrittenHistory() public {
        bytes32[] memory h = RefMerkle.leaves(20, 1);
        uint8[3] memory olds = [uint8(5), 8, 12];
        for (uint256 t; t < olds.length; ++t) {
            bytes32 logId = keccak256(abi.encode("rewrite", t));
            uint256 m = olds[t];
            _anchor(logId, m, RefMerkle.root(h, m), _none());
            for (uint256 k; k < m; ++k) {
                bytes32[] memory forged = _copy(h);
                forged[k] = RefMerkle.leafHash("rewritten");
                bytes32 forgedRoot = RefMerkle.root(forged, 20);
                _assertAnchorRootMismatch(logId, 20, forgedRoot, RefMerkle.consistencyProof(forged, m, 20));
                _assertAnchorRootMismatch(logId, 20, forgedRoot, RefMerkle.consistencyProof(h, m, 20));
            }
            // Changing a leaf after the anchored size is not a rewrite: accepted.
            bytes32[] memory appended = _copy(h);
            appended[m] = RefMerkle.leafHash("new entry");
            _anchor(logId, 20, RefMerkle.root(appended, 20), RefMerkle.consistencyProof(appended, m, 20));
        }
    }

    // ---------------------------------------------------------------- inclusion

    function test_VerifyInclusion() public {
        bytes32[] memory h = RefMerkle.leaves(21, 3);
        _anchorGrowth(LOG, h, 13, 21);
        for (uint256 i; i < 21; ++i) {
            bytes32[] memory proof = RefMerkle.inclusionProof(h, i, 21);
            assertTrue(anchorC.verifyInclusion(LOG, 21, h[i], uint64(i), proof));
            assertFalse(anchorC.verifyInclusion(LOG, 21, keccak256("other leaf"), uint64(i), proof));
            if (i < 13) {
                // Still provable against the older anchored root.
                assertTrue(anchorC.verifyInclusion(LOG, 13, h[i], uint64(i), RefMerkle.inclusionProof(h, i, 13)));
            }
        }
        // The right leaf and proof at the wrong index (same proof length).
        assertFalse(anchorC.verifyInclusion(LOG, 21, h[2], 3, RefMerkle.inclusionProof(h, 2, 21)));
    }

    function test_VerifyInclusion_Rejections() public {
        bytes32[] memory h = RefMerkle.leaves(13, 3);
        _anchor(LOG, 13, RefMerkle.root(h, 13), _none());
        bytes32[] memory proof = RefMerkle.inclusionProof(h, 4, 13);

        vm.expectRevert(abi.encodeWithSelector(CarbonAnchor.UnknownAnchor.selector, LOG, uint64(12)));
        anchorC.verifyInclusion(LOG, 12, h[4], 4, proof);
        vm.expectRevert(abi.encodeWithSelector(CarbonAnchor.UnknownAnchor.selector, OTHER_LOG, uint64(13)));
        anchorC.verifyInclusion(OTHER_LOG, 13, h[4], 4, proof);
        vm.expectRevert(abi.encodeWithSelector(RFC9162.IndexOutOfRange.selector, uint64(13), uint64(13)));
        anchorC.verifyInclusion(LOG, 13, h[4], 13, proof);
        vm.expectRevert(abi.encodeWithSelector(RFC9162.ProofLengthMismatch.selector, proof.length, proof.length - 1));
        anchorC.verifyInclusion(LOG, 13, h[4], 4, _truncate(proof));
        vm.expectRevert(abi.encodeWithSelector(RFC9162.ProofLengthMismatch.selector, proof.length, proof.length + 1));
        anchorC.verifyInclusion(LOG, 13, h[4], 4, _extend(proof, h[5]));
    }

    // ------------------------------------------------- verifier edge rules (upstream)

    function test_Consistency_EdgeRules() public {
        bytes32 r = keccak256("r");
        bytes32 emptyRoot = sha256(""); // (computed before expectRevert: it is a precompile call)
        bytes32[] memory one = new bytes32[](1);
        vm.expectRevert(RFC9162.EmptyOldTree.selector);
        anchorC.verifyConsistency(0, 5, emptyRoot, r, _none());
        vm.expectRevert(RFC9162.EmptyOldTree.selector);
        anchorC.verifyConsistency(0, 0, emptyRoot, emptyRoot, _none());
        vm.expectRevert(abi.encodeWithSelector(RFC9162.OldSizeExceedsNewSize.selector, uint64(5), uint64(3)));
        anchorC.verifyConsistency(5, 3, r, r, _none());
        vm.expectRevert(abi.encodeWithSelector(RFC9162.ProofLengthMismatch.selector, 0, 1));
        anchorC.verifyConsistency(4, 4, r, r, one);
        vm.expectRevert(RFC9162.EqualSizeRootMismatch.selector);
        anchorC.verifyConsistency(4, 4, r, keccak256("s"), _none());
        anchorC.verifyConsistency(4, 4, r, r, _none()); // equal sizes, equal roots, no proof
    }

    // -------------------------------------------- transparency-dev vectors (RFC 6962)

    // From ../shared/testdata/rfc9162/transparency-dev-vectors.json (github.com/
    // transparency-dev/merkle testonly/constants.go and testdata/, Apache-2.0).
    function _vectorLeaves() internal pure returns (bytes32[] memory h) {
        bytes[8] memory inputs = [
            bytes(hex""),
            hex"00",
            hex"10",
            hex"2021",
            hex"3031",
            hex"40414243",
            hex"5051525354555657",
            hex"606162636465666768696a6b6c6d6e6f"
        ];
        h = new bytes32[](8);
        for (uint256 i; i < 8; ++i) {
            h[i] = RefMerkle.leafHash(inputs[i]);
        }
    }

    function _vectorRoot(uint256 size) internal pure returns (bytes32) {
        bytes32[9] memory roots = [
            bytes32(0xe3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855),
            0x6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d,
            0xfac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125,
            0xaeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77,
            0xd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7,
            0x4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4,
            0x76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef,
            0xddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c,
            0x5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328
        ];
        return roots[size];
    }

    /// The reference tree reproduces the published roots, so it can stand in for them.
    function test_Vectors_ReferenceTreeRoots() public pure {
        bytes32[] memory h = _vectorLeaves();
        for (uint256 n; n <= 8; ++n) {
            assertEq(RefMerkle.root(h, n), _vectorRoot(n));
        }
    }

    function test_Vectors_ConsistencyHappyPaths() public {
        bytes32[] memory h = _vectorLeaves();
        // consistency/1/happy-path.json: 1 -> 8
        bytes32[] memory p = new bytes32[](3);
        p[0] = 0x96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7;
        p[1] = 0x5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e;
        p[2] = 0x6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4;
        anchorC.verifyConsistency(1, 8, _vectorRoot(1), _vectorRoot(8), p);
        assertEq(keccak256(abi.encode(RefMerkle.consistencyProof(h, 1, 8))), keccak256(abi.encode(p)));
        // consistency/2/happy-path.json: 6 -> 8
        p[0] = 0x0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a;
        p[1] = 0xca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0;
        p[2] = 0xd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7;
        anchorC.verifyConsistency(6, 8, _vectorRoot(6), _vectorRoot(8), p);
        assertEq(keccak256(abi.encode(RefMerkle.consistencyProof(h, 6, 8))), keccak256(abi.encode(p)));
        // ... and through anchor(): 6 then 8.
        _anchor(LOG, 6, _vectorRoot(6), _none());
        _anchor(LOG, 8, _vectorRoot(8), p);
        // consistency/4/happy-path.json: 6 -> 7
        p[1] = 0xb08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f;
        anchorC.verifyConsistency(6, 7, _vectorRoot(6), _vectorRoot(7), p);
        // consistency/3/happy-path.json: 2 -> 5
        bytes32[] memory q = new bytes32[](2);
        q[0] = 0x5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e;
        q[1] = 0xbc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b;
        anchorC.verifyConsistency(2, 5, _vectorRoot(2), _vectorRoot(5), q);
        // consistency/0/happy-path.json: 1 -> 1
        anchorC.verifyConsistency(1, 1, _vectorRoot(1), _vectorRoot(1), _none());
    }

    function test_Vectors_InclusionHappyPaths() public view {
        // inclusion/2/happy-path.json: leaf 5 of 8
        bytes32[] memory p = new bytes32[](3);
        p[0] = 0xbc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b;
        p[1] = 0xca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0;
        p[2] = 0xd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7;
        bytes32 leaf5 = 0x4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658;
        assertEq(anchorC.rootFromInclusionProof(5, 8, leaf5, p), _vectorRoot(8));
        // inclusion/4/happy-path.json: leaf 1 of 5
        p[0] = 0x6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d;
        p[1] = 0x5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e;
        p[2] = 0xbc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b;
        bytes32 leaf1 = 0x96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7;
        assertEq(anchorC.rootFromInclusionProof(1, 5, leaf1, p), _vectorRoot(5));
        // inclusion/3/happy-path.json: leaf 2 of 3
        bytes32[] memory q = new bytes32[](1);
        q[0] = 0xfac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125;
        bytes32 leaf2 = 0x0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7;
        assertEq(anchorC.rootFromInclusionProof(2, 3, leaf2, q), _vectorRoot(3));
        // inclusion/0/happy-path.json: the only leaf of 1
        assertEq(anchorC.rootFromInclusionProof(0, 1, _vectorRoot(1), _none()), _vectorRoot(1));
    }

    // -------------------------------------------------------------------- fuzz

    /// For m < n <= 64: the reference PROOF(m, n) verifies, has exactly the length the
    /// verifier demands, and any flipped bit, truncation or extension fails.
    function testFuzz_Consistency(uint256 m, uint256 n, uint256 seed) public view {
        n = bound(n, 2, 64);
        m = bound(m, 1, n - 1);
        bytes32[] memory h = RefMerkle.leaves(n, seed);
        bytes32 root1 = RefMerkle.root(h, m);
        bytes32 root2 = RefMerkle.root(h, n);
        bytes32[] memory proof = RefMerkle.consistencyProof(h, m, n);
        assertEq(proof.length, RefMerkle.subproofLength(m, n, true));
        anchorC.verifyConsistency(uint64(m), uint64(n), root1, root2, proof);

        bytes32[] memory flipped = _copy(proof);
        uint256 pos = uint256(keccak256(abi.encode(seed, "pos"))) % proof.length;
        flipped[pos] ^= bytes32(uint256(1) << (uint256(keccak256(abi.encode(seed, "bit"))) % 256));
        _assertConsistencyRootMismatch(m, n, root1, root2, flipped);
        // Flipped roots fail too.
        _assertConsistencyRootMismatch(m, n, root1 ^ bytes32(uint256(1)), root2, proof);
        _assertConsistencyRootMismatch(m, n, root1, root2 ^ bytes32(uint256(1) << 255), proof);

        try anchorC.verifyConsistency(uint64(m), uint64(n), root1, root2, _truncate(proof)) {
            revert("a truncated proof verified");
        } catch (bytes memory err) {
            assertEq(err, abi.encodeWithSelector(RFC9162.ProofLengthMismatch.selector, proof.length, proof.length - 1));
        }
        try anchorC.verifyConsistency(uint64(m), uint64(n), root1, root2, _extend(proof, root2)) {
            revert("an extended proof verified");
        } catch (bytes memory err) {
            assertEq(err, abi.encodeWithSelector(RFC9162.ProofLengthMismatch.selector, proof.length, proof.length + 1));
        }
    }

    /// Inclusion proofs for every (index, size) up to 64 leaves, and a flipped bit fails.
    function testFuzz_Inclusion(uint256 n, uint256 index, uint256 seed) public view {
        n = bound(n, 1, 64);
        index = bound(index, 0, n - 1);
        bytes32[] memory h = RefMerkle.leaves(n, seed);
        bytes32 root = RefMerkle.root(h, n);
        bytes32[] memory proof = RefMerkle.inclusionProof(h, index, n);
        assertEq(proof.length, RefMerkle.pathLength(index, n));
        assertEq(anchorC.rootFromInclusionProof(uint64(index), uint64(n), h[index], proof), root);
        if (proof.length > 0) {
            uint256 pos = uint256(keccak256(abi.encode(seed, "pos"))) % proof.length;
            proof[pos] ^= bytes32(uint256(1) << (uint256(keccak256(abi.encode(seed, "bit"))) % 256));
            assertTrue(anchorC.rootFromInclusionProof(uint64(index), uint64(n), h[index], proof) != root);
        }
    }

    /// The proof lengths the verifiers demand equal the RFC 9162 recursions for any
    /// uint64 sizes, far beyond trees the tests can build.
    function testFuzz_ProofLengthsMatchRecursion(uint64 m, uint64 n, uint64 index) public view {
        n = uint64(bound(n, 2, type(uint64).max));
        m = uint64(bound(m, 1, n - 1));
        index = uint64(bound(index, 0, n - 1));
        uint256 expected = RefMerkle.subproofLength(m, n, true);
        try anchorC.verifyConsistency(m, n, bytes32(0), bytes32(0), _none()) {
            revert("an empty proof verified for growing sizes");
        } catch (bytes memory err) {
            assertEq(err, abi.encodeWithSelector(RFC9162.ProofLengthMismatch.selector, expected, 0));
        }
        assertEq(RFC9162.pathLength(index, n), RefMerkle.pathLength(index, n));
    }

    /// Three growing anchors of one log, then inclusion against each anchored size.
    function testFuzz_AnchorSequence(uint256 a, uint256 b, uint256 c, uint256 seed) public {
        a = bound(a, 1, 62);
        b = bound(b, a + 1, 63);
        c = bound(c, b + 1, 64);
        bytes32[] memory h = RefMerkle.leaves(c, seed);
        _anchor(LOG, a, RefMerkle.root(h, a), _none());
        _anchor(LOG, b, RefMerkle.root(h, b), RefMerkle.consistencyProof(h, a, b));
        _anchor(LOG, c, RefMerkle.root(h, c), RefMerkle.consistencyProof(h, b, c));
        uint256[3] memory sizes = [a, b, c];
        for (uint256 i; i < 3; ++i) {
            uint256 idx = uint256(keccak256(abi.encode(seed, i))) % sizes[i];
            assertTrue(
                anchorC.verifyInclusion(
                    LOG, uint64(sizes[i]), h[idx], uint64(idx), RefMerkle.inclusionProof(h, idx, sizes[i])
                )
            );
        }
        (uint64 size, bytes32 root) = anchorC.latest(LOG);
        assertEq(size, c);
        assertEq(root, RefMerkle.root(h, c));
    }

    /// Rewriting any anchored leaf makes the rewritten tree's root unanchorable.
    function testFuzz_RewrittenHistoryRejected(uint256 m, uint256 n, uint256 k, uint256 seed) public {
        n = bound(n, 2, 64);
        m = bound(m, 1, n - 1);
        k = bound(k, 0, m - 1);
        bytes32[] memory h = RefMerkle.leaves(n, seed);
        _anchor(LOG, m, RefMerkle.root(h, m), _none());
        bytes32[] memory forged = _copy(h);
        forged[k] = keccak256(abi.encode(seed, "rewritten"));
        bytes32 forgedRoot = RefMerkle.root(forged, n);
        _assertAnchorRootMismatch(LOG, n, forgedRoot, RefMerkle.consistencyProof(forged, m, n));
        _assertAnchorRootMismatch(LOG, n, forgedRoot, RefMerkle.consistencyProof(h, m, n));
    }

    function testFuzz_NonGrowingRejected(uint64 first, uint64 second) public {
        first = uint64(bound(first, 1, type(uint32).max));
        second = uint64(bound(second, 0, first));
        _anchor(LOG, first, keccak256("root"), _none());
        vm.expectRevert(abi.encodeWithSelector(CarbonAnchor.SizeNotGrowing.selector, first, second));
        _anchor(LOG, second, keccak256("root"), new bytes32[](1));
    }
}

/// The committed artifact (from build.mjs) is the code these tests exercise.
contract CarbonAnchorArtifactTest is AnchorFixture {
    string internal constant ARTIFACT = "artifacts/CarbonAnchor.json";

    /// Strips the CBOR metadata trailer (its length is in the last two bytes).
    function _stripMetadata(bytes memory code) internal pure returns (bytes memory out) {
        uint256 len = code.length;
        uint256 trailer = (uint256(uint8(code[len - 2])) << 8 | uint8(code[len - 1])) + 2;
        out = new bytes(len - trailer);
        for (uint256 i; i < out.length; ++i) {
            out[i] = code[i];
        }
    }

    function test_Artifact_RuntimeCodeMatchesForgeBuild() public view {
        bytes memory runtime = vm.parseJsonBytes(vm.readFile(ARTIFACT), ".deployedBytecode");
        assertEq(_stripMetadata(runtime), _stripMetadata(address(anchorC).code));
    }

    function test_Artifact_DeploysAndAnchors() public {
        string memory json = vm.readFile(ARTIFACT);
        bytes memory initCode = abi.encodePacked(vm.parseJsonBytes(json, ".bytecode"), abi.encode(admin));
        address deployed;
        assembly {
            deployed := create(0, add(initCode, 0x20), mload(initCode))
        }
        assertTrue(deployed != address(0), "artifact bytecode failed to deploy");
        assertEq(deployed.code, vm.parseJsonBytes(json, ".deployedBytecode"));
        anchorC = CarbonAnchor(deployed);
        _ensureRegistered(LOG);
        bytes32[] memory h = RefMerkle.leaves(48, 9);
        _anchorGrowth(LOG, h, 17, 40);
        assertTrue(anchorC.verifyInclusion(LOG, 40, h[33], 33, RefMerkle.inclusionProof(h, 33, 40)));
        bytes32[] memory forged = _copy(h);
        forged[20] = keccak256("rewritten");
        _assertAnchorRootMismatch(LOG, 48, RefMerkle.root(forged, 48), RefMerkle.consistencyProof(h, 40, 48));
        _anchor(LOG, 48, RefMerkle.root(h, 48), RefMerkle.consistencyProof(h, 40, 48));
    }
}

/// v2: logs registered by the admin, one anchorer per log, bounded growth, revocation.
contract CarbonAnchorV2Test is AnchorFixture {
    bytes32 internal constant BOUNDED = keccak256("carbonledger/bounded-log");
    uint32 internal constant MAX_GROWTH = 1 << 24;
    address internal thief = makeAddr("thief");
    address internal newAnchorer = makeAddr("new anchorer");

    function setUp() public override {
        super.setUp();
        vm.prank(admin);
        anchorC.registerLog(BOUNDED, anchorer, MAX_GROWTH, WINDOW);
        _registeredHere[address(anchorC)][BOUNDED] = true;
    }

    function _anchorAs(address who, bytes32 logId, uint256 size, bytes32 root, bytes32[] memory proof) internal {
        vm.prank(who);
        anchorC.anchor(logId, uint64(size), root, _mapRoot(size), proof);
    }

    function _unauthorized(address account) internal view returns (bytes memory) {
        return abi.encodeWithSelector(
            IAccessControl.AccessControlUnauthorizedAccount.selector, account, anchorC.DEFAULT_ADMIN_ROLE()
        );
    }

    // ------------------------------------------------------------- registration

    function test_Register_SetsConfigAndEmits() public {
        bytes32 logId = keccak256("fresh");
        vm.expectEmit(true, true, true, true, address(anchorC));
        emit CarbonAnchor.LogRegistered(logId, anchorer, 1000, 3600);
        vm.prank(admin);
        anchorC.registerLog(logId, anchorer, 1000, 3600);
        (address who, uint32 maxGrowth, uint32 window, uint64 size, uint32 revoked) = anchorC.logConfig(logId);
        assertEq(who, anchorer);
        assertEq(maxGrowth, 1000);
        assertEq(window, 3600);
        assertEq(size, 0);
        assertEq(revoked, 0);
        (who, maxGrowth,,,) = anchorC.logConfig(keccak256("never registered"));
        assertEq(who, address(0));
        assertEq(maxGrowth, 0);
    }

    function test_Register_Rejections() public {
        vm.startPrank(admin);
        vm.expectRevert(abi.encodeWithSelector(CarbonAnchor.LogAlreadyRegistered.selector, BOUNDED));
        anchorC.registerLog(BOUNDED, newAnchorer, 1, WINDOW);
        vm.expectRevert(CarbonAnchor.ZeroMaxGrowth.selector);
        anchorC.registerLog(keccak256("x"), anchorer, 0, WINDOW);
        vm.expectRevert(CarbonAnchor.ZeroAnchorer.selector);
        anchorC.registerLog(keccak256("x"), address(0), 1, WINDOW);
        // Admin and anchorer keys are separate.
        vm.expectRevert(abi.encodeWithSelector(CarbonAnchor.AnchorerIsAdmin.selector, admin));
        anchorC.registerLog(keccak256("x"), admin, 1, WINDOW);
        vm.stopPrank();
    }

    /// The first anchor is not free: nobody, not even the admin, anchors an unregistered log.
    function test_Attack_UnregisteredLogCannotBeAnchored() public {
        bytes32 logId = keccak256("carbonledger/forked-log");
        address[3] memory callers = [anchorer, admin, stranger];
        for (uint256 i; i < callers.length; ++i) {
            vm.expectRevert(abi.encodeWithSelector(CarbonAnchor.LogNotRegistered.selector, logId));
            _anchorAs(callers[i], logId, 5, keccak256("forked root"), _none());
        }
        vm.expectRevert(abi.encodeWithSelector(CarbonAnchor.LogNotRegistered.selector, logId));
        vm.prank(admin);
        anchorC.setAnchorer(logId, anchorer);
        vm.expectRevert(abi.encodeWithSelector(CarbonAnchor.LogNotRegistered.selector, logId));
        vm.prank(admin);
        anchorC.revokeAnchorsAbove(logId, 0);
    }

    function test_OnlyTheLogsAnchorerAnchors() public {
        vm.prank(admin);
        anchorC.registerLog(keccak256("theirs"), newAnchorer, MAX_GROWTH, WINDOW);
        // The anchorer of one log cannot anchor another; the admin cannot anchor at all.
        vm.expectRevert(abi.encodeWithSelector(CarbonAnchor.NotAnchorer.selector, keccak256("theirs"), anchorer));
        _anchorAs(anchorer, keccak256("theirs"), 1, keccak256("r"), _none());
        vm.expectRevert(abi.encodeWithSelector(CarbonAnchor.NotAnchorer.selector, BOUNDED, admin));
        _anchorAs(admin, BOUNDED, 1, keccak256("r"), _none());
        _anchorAs(newAnchorer, keccak256("theirs"), 1, keccak256("r"), _none());
    }

    // ----------------------------------------------------------------- rotation

    function test_Rotation() public {
        bytes32[] memory h = RefMerkle.leaves(9, 4);
        _anchorAs(anchorer, BOUNDED, 4, RefMerkle.root(h, 4), _none());
        vm.expectEmit(true, true, true, true, address(anchorC));
        emit CarbonAnchor.AnchorerChanged(BOUNDED, anchorer, newAnchorer);
        vm.prank(admin);
        anchorC.setAnchorer(BOUNDED, newAnchorer);
        bytes32 root9 = RefMerkle.root(h, 9); // (before expectRevert: sha256 is a call)
        bytes32[] memory proof = RefMerkle.consistencyProof(h, 4, 9);
        vm.expectRevert(abi.encodeWithSelector(CarbonAnchor.NotAnchorer.selector, BOUNDED, anchorer));
        _anchorAs(anchorer, BOUNDED, 9, root9, proof);
        _anchorAs(newAnchorer, BOUNDED, 9, root9, proof);
        vm.startPrank(admin);
        vm.expectRevert(CarbonAnchor.ZeroAnchorer.selector);
        anchorC.setAnchorer(BOUNDED, address(0));
        vm.expectRevert(abi.encodeWithSelector(CarbonAnchor.AnchorerIsAdmin.selector, admin));
        anchorC.setAnchorer(BOUNDED, admin);
        vm.stopPrank();
    }

    /// A thief of an anchorer key cannot rotate it, register logs, revoke, or make itself admin.
    function test_Attack_AnchorerKeyCannotAdminister() public {
        vm.startPrank(anchorer);
        bytes memory denied = _unauthorized(anchorer);
        vm.expectRevert(denied);
        anchorC.setAnchorer(BOUNDED, thief);
        vm.expectRevert(denied);
        anchorC.registerLog(keccak256("thief's log"), anchorer, type(uint32).max, WINDOW);
        vm.expectRevert(denied);
        anchorC.revokeAnchorsAbove(BOUNDED, 0);
        bytes32 adminRole = anchorC.DEFAULT_ADMIN_ROLE();
        vm.expectRevert(denied);
        anchorC.grantRole(adminRole, anchorer);
        vm.stopPrank();
        (address who,,,,) = anchorC.logConfig(BOUNDED);
        assertEq(who, anchorer);
        assertFalse(anchorC.hasRole(adminRole, anchorer));
    }

    /// Even the admin cannot make a current anchorer an admin; a retired one it can.
    function test_AnchorerNeverHoldsAdmin() public {
        bytes32 adminRole = anchorC.DEFAULT_ADMIN_ROLE();
        vm.startPrank(admin);
        vm.expectRevert(abi.encodeWithSelector(CarbonAnchor.AnchorerIsAdmin.selector, anchorer));
        anchorC.grantRole(adminRole, anchorer);
        // anchorer serves LOG, OTHER_LOG and BOUNDED: retire it from all three.
        anchorC.setAnchorer(LOG, newAnchorer);
        anchorC.setAnchorer(OTHER_LOG, newAnchorer);
        vm.expectRevert(abi.encodeWithSelector(CarbonAnchor.AnchorerIsAdmin.selector, anchorer));
        anchorC.grantRole(adminRole, anchorer);
        anchorC.setAnchorer(BOUNDED, newAnchorer);
        anchorC.grantRole(adminRole, anchorer);
        vm.stopPrank();
        assertTrue(anchorC.hasRole(adminRole, anchorer));
    }

    // ------------------------------------------------------------------- growth

    function test_Growth_Bounded() public {
        bytes32 r = keccak256("r");
        vm.expectRevert(abi.encodeWithSelector(CarbonAnchor.GrowthAboveLimit.selector, 0, MAX_GROWTH + 1, MAX_GROWTH));
        _anchorAs(anchorer, BOUNDED, uint256(MAX_GROWTH) + 1, r, _none());
        _anchorAs(anchorer, BOUNDED, MAX_GROWTH, r, _none()); // exactly the bound: accepted
        (, uint32 maxGrowth,, uint64 size,) = anchorC.logConfig(BOUNDED);
        assertEq(size, maxGrowth);
    }

    /// Issue 11 attack 9: a thief of the anchorer key anchors a fabricated size 2^62 with a
    /// made-up proof; the contract refuses it by the growth bound before any proof check.
    /// What it can still anchor (a fabricated extension within the bound) the admin revokes
    /// after rotating the key, and the honest log anchors again.
    function test_Attack_StolenAnchorerKey() public {
        bytes32[] memory h = RefMerkle.leaves(12, 5);
        _anchorAs(anchorer, BOUNDED, 5, RefMerkle.root(h, 5), _none());

        bytes32[] memory fabricated = new bytes32[](62);
        for (uint256 i; i < fabricated.length; ++i) {
            fabricated[i] = keccak256(abi.encode("fabricated", i));
        }
        vm.expectRevert(abi.encodeWithSelector(CarbonAnchor.GrowthAboveLimit.selector, 5, uint64(1) << 62, MAX_GROWTH));
        _anchorAs(anchorer, BOUNDED, uint256(1) << 62, keccak256("fake root"), fabricated);

        // Within the bound the thief can anchor a fabricated extension of the anchored tree ...
        bytes32[] memory fake = _copy(h);
        fake[7] = keccak256("fabricated entry");
        _anchorAs(anchorer, BOUNDED, 9, RefMerkle.root(fake, 9), RefMerkle.consistencyProof(fake, 5, 9));
        // ... and the honest log no longer extends the chain.
        _assertAnchorRootMismatch(BOUNDED, 12, RefMerkle.root(h, 12), RefMerkle.consistencyProof(h, 9, 12));

        // Recovery by the cold admin key: rotate, revoke the fabricated anchor, anchor again.
        vm.startPrank(admin);
        anchorC.setAnchorer(BOUNDED, newAnchorer);
        vm.expectEmit(true, true, true, true, address(anchorC));
        emit CarbonAnchor.AnchorRevoked(BOUNDED, 9, RefMerkle.root(fake, 9), 5);
        anchorC.revokeAnchorsAbove(BOUNDED, 5);
        vm.stopPrank();
        vm.expectRevert(abi.encodeWithSelector(CarbonAnchor.AnchorRevokedAt.selector, BOUNDED, uint64(9)));
        anchorC.rootAt(BOUNDED, 9);
        (uint64 size, bytes32 root) = anchorC.latest(BOUNDED);
        assertEq(size, 5);
        assertEq(root, RefMerkle.root(h, 5));
        _anchorAs(newAnchorer, BOUNDED, 12, RefMerkle.root(h, 12), RefMerkle.consistencyProof(h, 5, 12));
        (,,,, uint32 revoked) = anchorC.logConfig(BOUNDED);
        assertEq(revoked, 1);
    }

    // --------------------------------------------------------------- revocation

    function test_Revoke_SeveralDownToAnAnchoredSize() public {
        bytes32[] memory h = RefMerkle.leaves(20, 6);
        uint8[4] memory sizes = [uint8(3), 8, 13, 20];
        uint256 previous;
        for (uint256 i; i < sizes.length; ++i) {
            bytes32[] memory proof = previous == 0 ? _none() : RefMerkle.consistencyProof(h, previous, sizes[i]);
            _anchorAs(anchorer, BOUNDED, sizes[i], RefMerkle.root(h, sizes[i]), proof);
            previous = sizes[i];
        }
        vm.startPrank(admin);
        vm.expectRevert(abi.encodeWithSelector(CarbonAnchor.NothingToRevoke.selector, BOUNDED, 20, 20));
        anchorC.revokeAnchorsAbove(BOUNDED, 20);
        vm.expectRevert(abi.encodeWithSelector(CarbonAnchor.NotAnAnchoredSize.selector, BOUNDED, 10));
        anchorC.revokeAnchorsAbove(BOUNDED, 10);
        anchorC.revokeAnchorsAbove(BOUNDED, 8);
        vm.stopPrank();
        assertEq(anchorC.rootAt(BOUNDED, 8), RefMerkle.root(h, 8));
        assertEq(anchorC.rootAt(BOUNDED, 3), RefMerkle.root(h, 3));
        for (uint256 i = 2; i < 4; ++i) {
            vm.expectRevert(abi.encodeWithSelector(CarbonAnchor.AnchorRevokedAt.selector, BOUNDED, uint64(sizes[i])));
            anchorC.rootAt(BOUNDED, sizes[i]);
        }
        // The same honest root at a revoked size is anchored again and valid again.
        _anchorAs(anchorer, BOUNDED, 20, RefMerkle.root(h, 20), RefMerkle.consistencyProof(h, 8, 20));
        (bytes32 root, bytes32 mapRoot, uint64 previousSize, uint40 anchoredAt) = anchorC.anchorAt(BOUNDED, 20);
        assertEq(root, RefMerkle.root(h, 20));
        assertEq(mapRoot, _mapRoot(20));
        assertEq(previousSize, 8);
        assertEq(anchoredAt, block.timestamp);
        (,,,, uint32 revoked) = anchorC.logConfig(BOUNDED);
        assertEq(revoked, 2);
        // Revoking everything makes the next anchor a first anchor again.
        vm.prank(admin);
        anchorC.revokeAnchorsAbove(BOUNDED, 0);
        (uint64 size, bytes32 latestRoot) = anchorC.latest(BOUNDED);
        assertEq(size, 0);
        assertEq(latestRoot, bytes32(0));
        _anchorAs(anchorer, BOUNDED, 2, RefMerkle.root(h, 2), _none());
    }

    /// Anchors older than the log's revocation window are final, even for the admin.
    function test_Revoke_OnlyWithinTheWindow() public {
        bytes32[] memory h = RefMerkle.leaves(9, 7);
        _anchorAs(anchorer, BOUNDED, 4, RefMerkle.root(h, 4), _none());
        uint256 first = block.timestamp;
        vm.warp(first + WINDOW + 1);
        _anchorAs(anchorer, BOUNDED, 9, RefMerkle.root(h, 9), RefMerkle.consistencyProof(h, 4, 9));
        vm.startPrank(admin);
        vm.expectRevert(abi.encodeWithSelector(CarbonAnchor.AnchorFinal.selector, BOUNDED, 4, uint40(first)));
        anchorC.revokeAnchorsAbove(BOUNDED, 0);
        vm.warp(first + 2 * WINDOW + 2);
        vm.expectRevert(
            abi.encodeWithSelector(CarbonAnchor.AnchorFinal.selector, BOUNDED, 9, uint40(first + WINDOW + 1))
        );
        anchorC.revokeAnchorsAbove(BOUNDED, 4);
        vm.warp(first + 2 * WINDOW + 1);
        anchorC.revokeAnchorsAbove(BOUNDED, 4); // exactly at the end of the window: still allowed
        vm.stopPrank();
    }

    // --------------------------------------------------------------------- fuzz

    /// Any registered bound: growth up to it is accepted, one more is refused, from any size.
    function testFuzz_GrowthBound(uint32 maxGrowth, uint64 start, uint64 growth) public {
        maxGrowth = uint32(bound(maxGrowth, 1, type(uint32).max));
        bytes32 logId = keccak256(abi.encode("fuzz", maxGrowth));
        vm.prank(admin);
        anchorC.registerLog(logId, anchorer, maxGrowth, WINDOW);
        start = uint64(bound(start, 1, maxGrowth));
        _anchorAs(anchorer, logId, start, keccak256("r1"), _none());
        growth = uint64(bound(growth, 1, type(uint64).max - start));
        bytes32 r2 = keccak256("r2");
        if (growth > maxGrowth) {
            vm.expectRevert(
                abi.encodeWithSelector(CarbonAnchor.GrowthAboveLimit.selector, start, start + growth, maxGrowth)
            );
        } else {
            // Within the bound the proof is checked (and this one is wrong).
            vm.expectRevert();
        }
        _anchorAs(anchorer, logId, start + growth, r2, new bytes32[](1));
    }

    /// Only the log's anchorer anchors; only the admin registers, rotates and revokes.
    function testFuzz_Roles(address caller) public {
        vm.assume(caller != anchorer && caller != admin);
        vm.expectRevert(abi.encodeWithSelector(CarbonAnchor.NotAnchorer.selector, BOUNDED, caller));
        _anchorAs(caller, BOUNDED, 1, keccak256("r"), _none());
        bytes memory denied = _unauthorized(caller);
        vm.startPrank(caller);
        vm.expectRevert(denied);
        anchorC.registerLog(keccak256(abi.encode(caller)), caller, 1, WINDOW);
        vm.expectRevert(denied);
        anchorC.setAnchorer(BOUNDED, caller);
        vm.expectRevert(denied);
        anchorC.revokeAnchorsAbove(BOUNDED, 0);
        vm.stopPrank();
    }
}
