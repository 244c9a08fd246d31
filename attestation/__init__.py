"""Checkpoints on chain, proof bundles and the offline verifier (see issue "On-chain anchoring")."""
