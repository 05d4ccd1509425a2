"""The Azure Functions app: composition only — every route lives in a blueprint of shared.api."""

import azure.functions as func

from shared.api import manage, omnichannel, ops, platform, timers, widget

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)

for blueprint in (ops.bp, manage.bp, platform.bp, widget.bp, omnichannel.bp, timers.bp):
    app.register_functions(blueprint)
