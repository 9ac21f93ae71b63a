"""Ring alerts to the owner's phone and Home Assistant, with no cloud in the path.

``doorbell notify`` runs :class:`doorbell.notify.service.Notifier` as its own user: it holds
no key and reads no clip or thumbnail. What it hears (:mod:`doorbell.notify.sources`):

- the recorder's live socket: ring, motion started/ended, storage full/recovered, camera
  lost/back (events only; it never asks for frames' content and never forwards one);
- the audit log, tailed from a saved cursor: the same recorder events (so what happened while
  the notifier was down is caught up, if still relevant), export requests, failed unlocks,
  and the owner's "send a test alert" button;
- the export requests in the index: an undecided request about to expire.

Where it sends (:mod:`doorbell.notify.mqtt`, :mod:`doorbell.notify.ntfy`,
:mod:`doorbell.notify.mail`): only to the destinations the owner configured. Never a picture:
an alert names the kind of event and links to the web UI, where the owner unlocks to see it.
Every send and every failure is an audit entry naming the channel, the event kind and the
destination host, nothing more.

Nothing here runs at import time.
"""

from __future__ import annotations
