"""The timer that enforces time limits; the work itself is `shared.services.enforcement`."""

from __future__ import annotations

import json
import logging

import azure.functions as func

from shared.api.http import blueprint
from shared.config import ConfigError
from shared.wiring import get_service

logger = logging.getLogger(__name__)

bp = blueprint()


@bp.function_name("enforce_time_limits")
@bp.timer_trigger(
    schedule="%RECONNECT_ENFORCE_SCHEDULE%",
    arg_name="timer",
    run_on_startup=False,
    use_monitor=True,
)
def enforce_time_limits(timer: func.TimerRequest) -> None:
    """Wrap up expired sessions, auto-close old wrap-ups, release capacity; log one line."""
    try:
        app = get_service()
    except ConfigError:
        # Fail closed: no work with a wrong setting. The error was logged once, when the
        # settings were first read; a line per run would bury it.
        return
    report = app.timer.run(past_due=timer.past_due)
    summary = {
        "event": "enforce_time_limits",
        "expired": report.expired,
        "closed": report.closed,
        "stale": report.stale,
        "pending": report.pending,
        "errors": report.errors,
        "cleanupErrors": report.cleanup_errors,
        "renewed": report.renewed,
        "capacityReleased": report.capacity_released,
        "capacityChecked": report.capacity_checked,
        "capacityCheckErrors": report.capacity_check_errors,
        "eventsSent": report.events_sent,
        "eventsDropped": report.events_dropped,
        "eventsWaiting": report.events_waiting,
        "eventsDeferred": report.events_deferred,
        "eventErrors": report.event_errors,
        "maxLatenessSeconds": report.max_lateness_seconds,
        "durationSeconds": report.duration_seconds,
        "pastDue": report.past_due,
        "buckets": [report.first_bucket, report.last_bucket],
    }
    logger.info("time limits enforced %s", json.dumps(summary))
