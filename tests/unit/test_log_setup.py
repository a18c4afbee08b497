"""A broker connection reset is one log line, not a stack trace; other errors keep their traceback."""

from __future__ import annotations

import io
import logging

from infra.log_setup import DroppedConnectionWithoutTraceback


def logged(error: BaseException) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("tests.kafka.net.transport")
    logger.addHandler(handler)
    logger.addFilter(DroppedConnectionWithoutTraceback())
    logger.propagate = False
    try:
        try:
            raise error
        except BaseException as caught:
            logger.exception("Error sending request data: %s", caught)
    finally:
        logger.removeHandler(handler)
        logger.filters.clear()
    return stream.getvalue()


def test_a_connection_reset_is_logged_as_one_line_without_a_traceback() -> None:
    text = logged(ConnectionResetError(104, "Connection reset by peer"))
    assert text == "Error sending request data: [Errno 104] Connection reset by peer\n"


def test_any_other_exception_keeps_its_traceback() -> None:
    text = logged(ValueError("a bug"))
    assert "Traceback (most recent call last)" in text and "ValueError: a bug" in text
