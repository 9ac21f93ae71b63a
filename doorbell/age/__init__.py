"""age v1 (the C2SP age specification) on the primitives of ``cryptography``.

The package is split like age's Go package, so that code which only encrypts can never
reach a secret:

- encrypt side: :mod:`doorbell.age.recipients` (``X25519Recipient``, ``ScryptRecipient``,
  ``parse_recipient``, ``parse_recipients``, ``parse_recipients_file``) and
  :mod:`doorbell.age.encrypt` (``encrypt``); they use only the pure helpers
  :mod:`~doorbell.age.bech32`, :mod:`~doorbell.age.header`, :mod:`~doorbell.age.stream`,
  :mod:`~doorbell.age.armor`, :mod:`~doorbell.age.primitives`, :mod:`~doorbell.age.errors`.
- decrypt side: :mod:`doorbell.age.identities` (``X25519Identity``, ``ScryptIdentity``,
  ``parse_identity``, ``parse_identities``) and :mod:`doorbell.age.decrypt` (``decrypt``).

This ``__init__`` imports nothing: names are resolved lazily on first use (PEP 562), so
``from doorbell.age import encrypt`` loads only the encrypt side, and the recorder imports
the submodules directly.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "encrypt": "encrypt",
    "EncryptWriter": "encrypt",
    "decrypt": "decrypt",
    "DecryptReader": "decrypt",
    "X25519Recipient": "recipients",
    "ScryptRecipient": "recipients",
    "parse_recipient": "recipients",
    "parse_recipients": "recipients",
    "parse_recipients_file": "recipients",
    "X25519Identity": "identities",
    "ScryptIdentity": "identities",
    "parse_identity": "identities",
    "parse_identities": "identities",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'doorbell.age' has no attribute {name!r}")
    loaded = importlib.import_module(f"{__name__}.{module}")
    if name == module:
        # encrypt/decrypt: the submodule itself, made callable (importing a submodule binds
        # its name on the package anyway, so the function cannot own that name reliably).
        return loaded
    value = getattr(loaded, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
