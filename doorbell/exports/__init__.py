"""Export requests: the owner alone approves or denies; bundles encrypted to the requester.

Lifecycle of a request (every transition one audit entry, object ``request/<id>``)::

    pending --approve--> approved --first download--> delivered
       |  \\--deny-----> denied                            |
       \\----time-----> expired (as a denial)               v
    approved/delivered --bundle expiry, limit used up, deletion--> closed (file deleted)

Modules: :mod:`.model` (fields, validation, tokens), :mod:`.registry` (tables, transitions,
downloads, expiry, transparency counts), :mod:`.bundle` (the streamed, encrypted tar),
:mod:`.proofs` (the cosigned checkpoint and inclusion proofs in it), :mod:`.verify`
(``doorbell verify-bundle``), :mod:`.service` (approval + background builds for UI and CLI).
Importing this package imports none of them.
"""
