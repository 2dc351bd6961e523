"""The app's Faust Worker (Faust's `Worker` setting), for `faust -A streams.app worker` and
`voucherify-streams worker` alike: the project's logging (STREAMS_LOG_FORMAT, the outage
summary), in place the moment Faust has set up its own — before anything connects to Kafka.

Faust replaces the root log handlers when its worker starts; an app task that put the outage
summary on them ran only once the worker was ready, so a broker away during start-up flooded
the log (~600 ERROR lines for 16 s of outage). `on_setup_root_logger` is Faust's hook right
after its logging set-up.
"""

from __future__ import annotations

import logging

import faust

from streams import logs


def quiet_hot_loggers(level: str) -> None:
    """Faust and aiokafka log every message sent at DEBUG; below INFO only when asked for,
    since building those records (repr of every key and value) costs more than the send."""
    asked = logging.getLevelName(level.upper())
    wanted = asked if isinstance(asked, int) and asked > logging.INFO else logging.INFO
    if asked == logging.DEBUG:
        wanted = logging.DEBUG
    for name in ("faust", "aiokafka", "mode"):
        logging.getLogger(name).setLevel(wanted)


class Worker(faust.Worker):
    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        settings = self.app.topology.settings  # type: ignore[attr-defined]
        if settings.log_format == "json":  # JSON lines only: no terminal spinner's escapes
            self.spinner = None
        super().on_setup_root_logger(logger, level)
        logs.format_handlers(settings)
        quiet_hot_loggers(settings.log_level)
