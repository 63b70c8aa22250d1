"""The web UI: ``ui_app(yard)`` is a Starlette app of server-rendered pages over a project
(runs, models, monitoring, the feature store) and the actions a person takes on models.
``modelyard ui`` serves it; a server mounts it under a prefix with its own
``authorize`` hook."""

from modelyard.ui.app import ui_app, ui_routes
from modelyard.ui.auth import ACTIONS, Action, Authorize, allow_all

__all__ = ["ACTIONS", "Action", "Authorize", "allow_all", "ui_app", "ui_routes"]
