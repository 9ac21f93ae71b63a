"""Export requests: the owner alone approves or denies; bundles encrypted to the requester.

Lifecycle of a request (every transition one audit entry, object ``request/<id>``)::

    pending --approve--> approved --first download--> delivered
       |  \\--deny-----> denied                            |
       \\----time-----> expired (as a denial)               v
    approved/delivered --bundle expiry, limit used up, deletion--> closed (file deleted)

Modules: :mod:`.model` (fields, validation, windows, tokens), :mod:`.lifecycle` (status and
bundle-state enums, the one transition table), :mod:`.core` (the registry's shared state and
reads), :mod:`.registry` (``exports.sqlite3``, decisions), :mod:`.delivery` (downloads,
expiry), :mod:`.invitations`, :mod:`.record` (a request's signed record, read from the audit
log: the truth the registry's rows only cache), :mod:`.manifest` (the one manifest type),
:mod:`.bundle` (the streamed, encrypted tar), :mod:`.proofs` (the cosigned checkpoint and
inclusion proofs in it), :mod:`.tarstream` (the strict tar reader), :mod:`.verify`
(``doorbell verify-bundle``), :mod:`.service` (approval, background builds, the expiry
sweeper for UI and CLI). Formats: ``docs/formats.md``.
Importing this package imports none of them.
"""
