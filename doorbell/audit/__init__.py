"""The signed audit log: RFC 6962 Merkle tree, C2SP checkpoints, owner cosignatures.

Modules: :mod:`~doorbell.audit.merkle` (hashes and proofs), :mod:`~doorbell.audit.note`
(signed notes, checkpoints, cosignatures), :mod:`~doorbell.audit.entries` (canonical entries),
:mod:`~doorbell.audit.devicekey` (the device signing key), :mod:`~doorbell.audit.log`
(:class:`AuditLog`), :mod:`~doorbell.audit.verify` and :mod:`~doorbell.audit.export`.
Nothing is imported here eagerly.
"""
