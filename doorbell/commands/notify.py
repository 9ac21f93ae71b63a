"""``doorbell notify``: the notifier daemon (ring alerts to MQTT/Home Assistant, ntfy, e-mail)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import click

from doorbell.commands.options import config_options, load_cli_config
from doorbell.config import Config
from doorbell.errors import NotifyError, UsageError


@click.command("notify")
@config_options
@click.option(
    "--test",
    "test_channel",
    type=click.Choice(["mqtt", "ntfy", "email"]),
    default=None,
    help="Send one test alert on this channel, print the result and exit (1 if it failed).",
)
@click.option(
    "--no-live", is_flag=True, help="Do not listen on the recorder's live socket (audit log only)."
)
def notify(
    config_path: Path | None, data_dir: Path | None, test_channel: str | None, no_live: bool
) -> None:
    """Run the notifier: tell the owner about rings and other events, on the channels set up.

    Channels are [mqtt] (Home Assistant), [ntfy] and [email] in the configuration; each goes
    only to the destination given there. It holds no key and sends no picture: an alert says
    what happened and links to the web UI. Every send and failure is in the audit log.
    """
    from doorbell import service
    from doorbell.audit.log import AuditLog
    from doorbell.notify.alerts import TEST, Alert
    from doorbell.notify.build import enabled_channels
    from doorbell.notify.service import Notifier

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = load_cli_config(config_path, data_dir)
    if test_channel is not None:
        channels = enabled_channels(config, one_shot=True)
        channel = next((c for c in channels if c.name == test_channel), None)
        if channel is None:
            raise UsageError(f"{test_channel}: not enabled; set {test_channel}.enabled = true")
        with (
            AuditLog.open(config.data_dir) as audit,
            Notifier(config, [channel], audit, live=False) as notifier,
        ):
            notifier.submit(
                Alert(TEST, time.time(), f"test:cli:{time.time()}", channel=channel.name)
            )
            outcome = notifier.wait_for_outcome(channel.name, TEST, 60.0)
        if outcome != "sent":
            raise NotifyError(
                f"{test_channel}: the test alert was not delivered (see the log above)"
            )
        click.echo(f"notify: test alert sent on {test_channel} to {channel.destination}")
        return

    def reload() -> Config:
        return load_cli_config(config_path, data_dir)

    ready = service.Notifier()
    while True:
        channels = enabled_channels(config)
        names = ", ".join(f"{c.name} ({c.destination})" for c in channels) or "none"
        click.echo(f"notify: channels: {names}")
        with service.StopSignals() as stop, AuditLog.open(config.data_dir) as audit:
            notifier = Notifier(config, channels, audit, live=not no_live, reload=reload)
            with notifier:
                ready.ready(f"channels: {names}")
                while not stop.stop_requested and not notifier.restart_needed.is_set():
                    notifier.wait_until_stopped(0.5)
            if stop.stop_requested:
                break
        config = reload()
    ready.stopping()
    click.echo("notify: stopped")
