"""Notifications leave Yekuo here: handed to SMS/IM gateways, and escalated when nobody acknowledges them.

``dispatch_pending`` publishes each notification of the read model that is not yet in the delivery
ledger (``notification_deliveries``) to ``yekuo.notifications.v1`` and records it there after the broker
acknowledged. Rows are claimed with ``FOR UPDATE SKIP LOCKED``, so several workers never publish the same
one; the ledger is not a read model, so a rebuild never re-sends. The one window left — a crash after
the broker's acknowledgement and before the ledger commit — republishes with the same
``notification_id``, which gateways use to drop the repeat.

``escalate_overdue`` turns department notifications left unacknowledged longer than the configured time
into ``EscalateNotification`` commands (idempotent by a command id derived from the notification), so
the escalation is a fact in the case history and the supervisor's notification follows from it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from kafka import KafkaProducer

from app.application import CaseApplication
from app.bootstrap import build_case_application
from consumers.backoff import close_producer, kafka_timeouts, pg_connect
from domain.commands import EscalateNotification
from domain.vocabulary import Actor
from infra.messages import NotificationMessage
from infra.settings import NOTIFICATIONS_TOPIC, Settings
from infra.sla_config import sla_config

log = structlog.get_logger("yekuo.notifier")

ESCALATION_ACTOR = Actor("yekuo-notifier", "业扩协同督办", "SYSTEM")

DISPATCH_BATCH = 500  # notifications per broker round trip and ledger commit

_PENDING = """
SELECT n.notification_id, n.case_id, n.case_number, n.recipient_kind, n.recipient, n.kind, n.message,
       n.due_at, n.created_at
FROM notifications n
WHERE NOT EXISTS (SELECT 1 FROM notification_deliveries d WHERE d.notification_id = n.notification_id)
ORDER BY n.created_at
LIMIT %s
FOR UPDATE OF n SKIP LOCKED
"""

_OVERDUE = """
SELECT n.notification_id, n.case_number, n.recipient
FROM notifications n
JOIN case_progress c ON c.case_id = n.case_id
WHERE n.recipient_kind = 'DEPARTMENT' AND n.acknowledged_at IS NULL AND n.escalated_at IS NULL
  AND n.created_at < %s AND c.status NOT IN ('COMPLETED', 'CANCELLED')
ORDER BY n.created_at
LIMIT %s
"""


class NotificationNotDeliveredError(Exception):
    """Raised when the broker did not acknowledge a dispatched notification in time (nothing is marked)."""


class Notifier:
    def __init__(
        self,
        settings: Settings,
        database_url: str,
        bootstrap_servers: str,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.database_url = database_url
        self.bootstrap_servers = bootstrap_servers
        self.clock = clock
        self._producer: KafkaProducer | None = None
        self._app: CaseApplication | None = None

    def dispatch_pending(self, limit: int = DISPATCH_BATCH) -> int:
        """Publish undelivered notifications and mark them delivered once the broker acknowledged every one
        of them; a failed send raises and marks nothing (they go out again next time)."""
        calendar = sla_config(self.settings).calendar
        with pg_connect(self.database_url) as conn, conn.transaction():
            rows = conn.execute(_PENDING, (limit,)).fetchall()
            if not rows:
                return 0
            producer = self._ensure_producer()
            sent = []
            for row in rows:
                message = NotificationMessage(
                    notification_id=row[0],
                    case_id=row[1],
                    case_number=row[2],
                    recipient_kind=row[3],
                    recipient=row[4],
                    kind=row[5],
                    message=row[6],
                    due_at=row[7],
                    due_provisional=bool(row[7]) and calendar.is_provisional(row[7]),
                    created_at=row[8],
                )
                sent.append(
                    producer.send(
                        NOTIFICATIONS_TOPIC, key=f"{row[3]}:{row[4]}".encode(), value=message.to_bytes()
                    )
                )
            producer.flush(timeout=self.settings.kafka_request_timeout_ms / 1000 + 10)
            for future in sent:  # flush() does not raise for failed records; each future does
                if not future.is_done:
                    raise NotificationNotDeliveredError(
                        f"{len(sent)} notifications not all acknowledged; none marked delivered"
                    )
                future.get(timeout=0)
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO notification_deliveries (notification_id, published_at) VALUES (%s, now()) "
                    "ON CONFLICT DO NOTHING",
                    [(row[0],) for row in rows],
                )
        log.info("notifications dispatched", count=len(rows), topic=NOTIFICATIONS_TOPIC)
        return len(rows)

    def escalate_overdue(self, limit: int = 200) -> int:
        """Escalate department notifications unacknowledged for too long; returns how many commands."""
        now = self.clock()
        cutoff = now - timedelta(hours=self.settings.notification_escalate_after_hours)
        with pg_connect(self.database_url) as conn:
            overdue = conn.execute(_OVERDUE, (cutoff, limit)).fetchall()
        if not overdue:
            return 0
        app = self._application()
        hours = self.settings.notification_escalate_after_hours
        for notification_id, case_number, department in overdue:
            outcome = app.execute(
                EscalateNotification(
                    command_id=f"escalate-notification:{notification_id}",
                    case_number=case_number,
                    actor=ESCALATION_ACTOR,
                    occurred_at=now,
                    channel="SYSTEM",
                    reason=f"通知超过 {hours:g} 小时未确认",
                    notification_id=str(notification_id),
                    department=department,
                )
            )
            log.info(
                "notification escalated",
                case_number=case_number,
                notification_id=str(notification_id),
                accepted=outcome.accepted,
                rule=outcome.rule,
            )
        return len(overdue)

    def _application(self) -> CaseApplication:
        if self._app is None:
            self._app = build_case_application(self.settings, self.database_url, create_tables=False)
        return self._app

    def _ensure_producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = KafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                enable_idempotence=True,
                acks="all",
                linger_ms=5,
                **kafka_timeouts(self.settings.kafka_request_timeout_ms),
            )
        return self._producer

    def drop_producer(self) -> None:
        """Forget the producer after a broker failure: its unsent records must not go out later unrecorded."""
        if self._producer is not None:
            close_producer(self._producer, timeout=0)
            self._producer = None

    def close(self) -> None:
        if self._producer is not None:
            close_producer(self._producer, timeout=5)
            self._producer = None
        if self._app is not None:
            self._app.close()

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()
