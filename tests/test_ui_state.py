"""web_state(): the one typed accessor of the web app's shared state."""

from __future__ import annotations

import pytest
from flask import Flask

from doorbell.ui.state import web_state


def test_web_state_refuses_what_create_app_did_not_build() -> None:
    app = Flask("not-doorbell")
    app.extensions["doorbell"] = {"config": None}
    with app.app_context(), pytest.raises(TypeError, match="not WebState"):
        web_state()


def test_web_state_needs_an_app_context() -> None:
    with pytest.raises(RuntimeError):
        web_state()
