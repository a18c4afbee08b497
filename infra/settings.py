"""Configuration: every knob of Yekuo, read from the environment (prefix-free names for the two
servers, ``YEKUO_`` for the rest) or a ``.env`` file. Built once by the composition root."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

CASE_EVENTS_TOPIC = "yekuo.case-events.v1"
INTAKE_TOPIC = "yekuo.intake.v1"
INTAKE_RESULTS_TOPIC = "yekuo.intake-results.v1"
INTAKE_DLQ_TOPIC = "yekuo.intake.dlq.v1"
NOTIFICATIONS_TOPIC = "yekuo.notifications.v1"
CASE_EVENTS_DLQ_TOPIC = "yekuo.case-events.dlq.v1"
RELAY_CONTROL_TOPIC = "yekuo.relay-control.v1"
"""One partition: the relay's incarnation markers, by which it notices that the broker lost its data."""

ALL_TOPICS = (
    INTAKE_TOPIC,
    INTAKE_RESULTS_TOPIC,
    INTAKE_DLQ_TOPIC,
    CASE_EVENTS_TOPIC,
    CASE_EVENTS_DLQ_TOPIC,
    NOTIFICATIONS_TOPIC,
)


class Settings(BaseSettings):
    """All configuration. Unset server addresses mean "start our own" (the embedded default)."""

    model_config = SettingsConfigDict(env_prefix="YEKUO_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None,
        validation_alias="DATABASE_URL",
        description="PostgreSQL URL; unset: the local stack starts an embedded PostgreSQL.",
    )
    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias="KAFKA_BOOTSTRAP_SERVERS",
        description="Kafka bootstrap servers; unset: the local stack starts the Tansu broker.",
    )
    state_dir: Path = Field(
        default=Path(".yekuo"),
        description="Where the local stack keeps data directories, logs and pid files.",
    )
    topic_partitions: int = Field(default=8, ge=1, description="Partitions of every topic we create.")
    topic_replication_factor: int = Field(default=1, ge=1)
    kafka_session_timeout_ms: int = Field(
        default=6000,
        ge=1000,
        description="Consumer group session timeout; Tansu joins take half of it (../shared/STACK.md).",
    )
    kafka_heartbeat_interval_ms: int = Field(default=1500, ge=100)
    kafka_fetch_max_wait_ms: int = Field(
        default=100,
        ge=1,
        description="Longest a consumer's fetch waits for data (Tansu never cuts it short).",
    )
    kafka_request_timeout_ms: int = Field(
        default=15_000,
        ge=1000,
        description="Longest a client waits for the broker to answer a request (sends, faust's fetches).",
    )

    # event store
    snapshot_interval: int = Field(default=50, ge=1, description="Take a case snapshot every N events.")
    aggregate_cache_size: int = Field(default=10_000, ge=0, description="Cases kept in memory; 0: none.")
    command_retries: int = Field(
        default=5, ge=0, description="Times a command is retried after a concurrent write to its case."
    )

    relay_batch_size: int = Field(default=2000, ge=1, description="Notifications the relay reads per batch.")

    # projections and notifications
    projection_batch_size: int = Field(default=500, ge=1, description="Events per projection batch.")
    projection_batch_seconds: float = Field(
        default=0.2, gt=0, description="Longest wait to fill a projection batch."
    )
    notification_dispatch_seconds: float = Field(
        default=1.0, gt=0, description="How often notifications are handed to the gateways topic."
    )
    notification_escalate_after_hours: float = Field(
        default=4.0, gt=0, description="Unacknowledged department notifications escalate after this long."
    )
    notification_escalation_check_seconds: float = Field(
        default=60.0, gt=0, description="How often overdue notifications are looked for."
    )

    # SLA
    sla_rule_set: str = Field(
        default="SGCC_INTERNAL", description="Active rule set: REG_2009, SGCC_INTERNAL…"
    )
    sla_rules_file: Path | None = Field(default=None, description="Extra rule sets (JSON, like infra/data).")
    calendar_dir: Path | None = Field(
        default=None,
        description="Years added by `yekuo calendar add` (one JSON per year); unset: STATE_DIR/calendar.",
    )
    calendar_provisional_years: int = Field(
        default=10, ge=1, le=50, description="Years after the last notice that count provisionally."
    )
    sla_tick_seconds: float = Field(default=30.0, gt=0, description="How often the SLA clock looks at time.")

    # HTTP API (api/)
    api_token_key: str | None = Field(
        default=None,
        description="HS256 key signing the API's bearer tokens; no default: the API refuses to start "
        "without one (the local stack and demo generate one into STATE_DIR/api_token_key).",
    )
    api_customer_max_failures: int = Field(
        default=5, ge=1, description="Failed customer look-ups per case number and client before 429."
    )
    api_customer_failure_window_seconds: float = Field(
        default=900.0, gt=0, description="How long failed customer look-ups are remembered."
    )

    # intake (yekuo.intake.v1)
    intake_max_message_bytes: int = Field(
        default=65_536, ge=256, description="Intake messages larger than this are dead-lettered unread."
    )
    intake_batch_size: int = Field(default=200, ge=1, description="Intake messages per group commit.")
    intake_batch_seconds: float = Field(default=0.05, gt=0, description="Longest wait to fill a batch.")
    source_systems_file: Path | None = Field(
        default=None, description="Table of source systems; unset: infra/data/source_systems.json."
    )
    intake_pool_timeout_seconds: int = Field(
        default=1,
        ge=1,
        description="Longest wait of the intake for a database connection; an outage is noticed this soon.",
    )

    # dispatch: automatic handler assignment (consumers/auto_assign.py)
    dispatch_file: Path | None = Field(
        default=None, description="Auto-assignment and handlers per department; unset: infra/data."
    )
    auto_assign_tick_seconds: float = Field(
        default=5.0, gt=0, description="How often `yekuo auto-assign` looks for unassigned stages."
    )
    log_level: str = Field(default="INFO")
    log_json: bool | None = Field(default=None, description="JSON logs; unset: JSON unless on a TTY.")

    @property
    def calendar_store(self) -> Path:
        """Where added calendar years live (shared by every process of one installation)."""
        return self.calendar_dir or self.state_dir / "calendar"
