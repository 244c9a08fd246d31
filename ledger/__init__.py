"""Domain core and storage of carbonledger.

Nothing in this package speaks HTTP or talks to a chain; `meter_signing`,
`attestation` and `api` build on it, never the other way round.

Where things happen:
- `ledger.log.canonical`  — every signed or hashed JSON object becomes bytes (RFC 8785).
- `ledger.log.merkle`     — pure RFC 9162 hashing, proof planning and proof verification.
- `ledger.log.store`        — the append-only log: the single write path (`Log.write`),
                        roots and proofs for any past size, checkpoints.
- `ledger.log.checkpoint` — the C2SP signed-note checkpoint format.
"""
