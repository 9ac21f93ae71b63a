"""age v1 (the C2SP age specification) on the primitives of ``cryptography``.

The package is split like age's Go package, so that code which only encrypts can never
reach a secret. Import the module you need; this package root defines nothing.

- encrypt side: :mod:`doorbell.age.recipients` (``X25519Recipient``, ``ScryptRecipient``,
  ``parse_recipient``, ``parse_recipients``, ``parse_recipients_file``) and
  :mod:`doorbell.age.encrypt` (``encrypt``); they use only the pure helpers
  :mod:`~doorbell.age.bech32`, :mod:`~doorbell.age.header`, :mod:`~doorbell.age.stream`,
  :mod:`~doorbell.age.armor`, :mod:`~doorbell.age.primitives`, :mod:`~doorbell.age.errors`.
- decrypt side: :mod:`doorbell.age.identities` (``X25519Identity``, ``ScryptIdentity``,
  ``parse_identity``, ``parse_identities``) and :mod:`doorbell.age.decrypt` (``decrypt``),
  which returns one of the two payload readers of :mod:`doorbell.age.payload`:
  :mod:`~doorbell.age.sequential` (forward only) or :mod:`~doorbell.age.random_access`
  (seekable files).
"""
