"""The verifiable log: a Merkle tree over every stored row, signed checkpoints, witnesses, proofs.

``merkle`` is the tree arithmetic (RFC 9162, pure); ``leaves`` turns a stored row into a leaf;
``chain`` is the follower that appends leaves; ``verify`` recomputes everything from the stored
rows; ``notes`` and ``signing_keys`` sign checkpoints; ``witness`` cosigns them elsewhere;
``bundle`` packs one patient's rows with their proofs for offline checking. docs/decisions/017.
"""
