"""structlog set-up, done once by each process's entry point: JSON lines off a TTY, console on one."""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(level: str = "INFO", json: bool | None = None) -> None:
    """Route structlog and stdlib logging to stderr; ``json=None`` picks JSON unless stderr is a TTY."""
    use_json = (not sys.stderr.isatty()) if json is None else json
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False) if use_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
    for chatty in ("kafka", "aiokafka"):  # connection chatter at INFO
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))
    # but a consumer group's rebalances (revoked, joined with which member id and generation, assigned)
    # are a few lines each and what an operator needs when a consumer seems stuck
    logging.getLogger("aiokafka.consumer.group_coordinator").setLevel(logging.getLevelName(level.upper()))
    # psycopg's pool warns once per failed reconnect attempt; during an outage each process logs one line
    # of its own (consumers.backoff.Outage) and a one-shot command one error, so only its errors show.
    logging.getLogger("psycopg.pool").setLevel(max(logging.ERROR, logging.getLevelName(level.upper())))
    transport = logging.getLogger("kafka.net.transport")
    if not any(isinstance(f, DroppedConnectionWithoutTraceback) for f in transport.filters):
        transport.addFilter(DroppedConnectionWithoutTraceback())


class DroppedConnectionWithoutTraceback(logging.Filter):
    """kafka-python logs a broker connection reset with ``log.exception``: a stack trace through its socket
    code for an expected event of every broker outage, which the process already reports and rides out.
    Keep the line, drop the trace; any other exception keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], OSError):
            record.exc_info = None
            record.exc_text = None
        return True
