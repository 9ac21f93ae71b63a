"""The recording pipeline: camera frames in, encrypted clips, thumbnails and audit entries out.

``pipeline`` (the loop), ``clipstate`` (the event state machine), ``preroll`` (the GOP ring),
``clipfile`` (MP4 -> age -> disk), ``sealaudit`` (one ``clip.sealed`` entry per clip),
``settings_watch`` (owner settings applied live). Everything here holds public keys only.
"""
