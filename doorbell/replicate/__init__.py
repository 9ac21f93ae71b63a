"""The off-site copy: ciphertext and the signed log, copied as they are written (issue 22).

Modules: :mod:`.destination` (a mounted directory, or SFTP with a pinned host key),
:mod:`.layout` (what the copy holds where), :mod:`.replicator` (``doorbell replicate``: the
passes, resuming, delayed deletions), :mod:`.state` (progress and the status doctor and the
UI show), :mod:`.witness` (does this device's log still extend the copy's checkpoints?) and
:mod:`.restore` (``doorbell restore``: a browsable data dir from the copy). Only restore
touches a decrypting key (the owner's key file, to check the passphrase). Importing this
package imports none of them. See docs/replicate.md.
"""
