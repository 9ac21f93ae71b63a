"""The channels a configuration enables, built (not yet connected)."""

from __future__ import annotations

from doorbell.config import Config
from doorbell.notify.channel import Channel

CHANNEL_NAMES = ("mqtt", "ntfy", "email")


def enabled_channels(config: Config, *, one_shot: bool = False) -> list[Channel]:
    """One channel per enabled section (``[mqtt]``, ``[ntfy]``, ``[email]``), none otherwise.

    ``one_shot``: for a single test alert beside the running notifier (MQTT: another client
    id, no discovery, no availability messages).

    Raises :class:`doorbell.errors.ConfigError` when a secret or CA file cannot be read.
    """
    ui_url = config.notify.ui_url
    channels: list[Channel] = []
    if config.mqtt.enabled:
        from doorbell.notify.mqtt import MqttChannel

        channels.append(MqttChannel(config.mqtt, ui_url=ui_url, one_shot=one_shot))
    if config.ntfy.enabled:
        from doorbell.notify.ntfy import NtfyChannel

        channels.append(NtfyChannel(config.ntfy, ui_url=ui_url))
    if config.email.enabled:
        from doorbell.notify.mail import EmailChannel

        channels.append(EmailChannel(config.email, ui_url=ui_url))
    return channels
