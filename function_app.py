"""The Azure Functions app: composition only — every route lives in a blueprint of shared.api."""

import contextlib

import azure.functions as func

from shared.api import events, manage, omnichannel, ops, platform, timers, widget
from shared.config import ConfigError, get_settings
from shared.redaction import install_log_redaction

# Before any request: no log record of the app (or the worker's own) may carry a reconnect ID.
install_log_redaction()
# Read now so that a wrong setting is logged at start-up; the routes then answer 503.
with contextlib.suppress(ConfigError):
    get_settings()

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

for blueprint in (
    ops.bp,
    manage.bp,
    platform.bp,
    widget.bp,
    omnichannel.bp,
    timers.bp,
    events.bp,
):
    app.register_functions(blueprint)
