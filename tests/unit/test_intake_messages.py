"""The intake contract: envelope validation, masking, and the published schemas and AsyncAPI document."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from infra.intake_messages import IntakeEnvelope, intake_schema_documents, masked_original
from infra.settings import ALL_TOPICS

DOCS = Path(__file__).resolve().parents[2] / "docs"
NOW = datetime(2025, 9, 1, 2, 0, tzinfo=UTC)


def envelope(**overrides: object) -> bytes:
    fields: dict[str, object] = {
        "message_id": "m-1",
        "type": "FileComplaint",
        "schema_version": 1,
        "occurred_at": "2025-09-01T09:00:00+08:00",
        "source_system": "ONLINE_HALL",
        "actor": {"person_id": "c-1", "name": "王秀英", "department": "CUSTOMER"},
        "case_number": "YK-1",
        "payload": {"complaint": "太慢"},
    }
    fields.update(overrides)
    return json.dumps(fields).encode()


def test_a_well_formed_envelope_decodes() -> None:
    decoded = IntakeEnvelope.from_bytes(envelope(), NOW)
    assert decoded.occurred_at.utcoffset() == timedelta(hours=8)
    assert decoded.actor.department == "CUSTOMER"


def test_an_occurred_at_without_offset_is_refused_with_the_reason() -> None:
    with pytest.raises(ValidationError, match="no UTC offset"):
        IntakeEnvelope.from_bytes(envelope(occurred_at="2025-09-01T09:00:00"), NOW)


def test_an_occurred_at_in_the_future_is_refused_with_the_reason() -> None:
    later = (NOW + timedelta(hours=1)).isoformat()
    with pytest.raises(ValidationError, match="lies in the future"):
        IntakeEnvelope.from_bytes(envelope(occurred_at=later), NOW)


def test_a_little_clock_skew_is_tolerated() -> None:
    IntakeEnvelope.from_bytes(envelope(occurred_at=(NOW + timedelta(minutes=2)).isoformat()), NOW)


def test_an_unknown_schema_version_and_extra_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="schema_version"):
        IntakeEnvelope.from_bytes(envelope(schema_version=2), NOW)
    with pytest.raises(ValidationError, match="extra"):
        IntakeEnvelope.from_bytes(envelope(extra=1), NOW)


def test_dead_letter_originals_mask_phone_and_id_numbers() -> None:
    text, raw = masked_original(
        envelope(payload={"contact_phone": "13812345678", "id_number": "350702199001010026"})
    )
    assert raw is None and text is not None
    assert "13812345678" not in text and "138****5678" in text
    assert "350702199001010026" not in text and "3507" in text
    plain, _ = masked_original(b"not json 13812345678")
    assert plain == "not json 138****5678"


def test_dead_letter_originals_that_are_not_utf8_are_kept_as_base64() -> None:
    text, raw = masked_original(b"\xff\xfe\x00garbage")
    assert text is None and raw is not None
    assert base64.b64decode(raw) == b"\xff\xfe\x00garbage"


def test_the_intake_json_schemas_in_docs_are_current() -> None:
    for name, text in intake_schema_documents().items():
        assert (DOCS / "schemas" / name).read_text() == text, f"run `yekuo schemas` to update {name}"


def test_the_asyncapi_document_names_every_topic_and_its_schema_refs_exist() -> None:
    text = (DOCS / "asyncapi.yaml").read_text()
    addresses = set(re.findall(r"^\s+address:\s*(\S+)\s*$", text, re.MULTILINE))
    assert addresses == set(ALL_TOPICS)
    refs = re.findall(r"\$ref:\s*\./(schemas/\S+\.json)", text)
    assert len(refs) == len(ALL_TOPICS)
    for ref in refs:
        assert (DOCS / ref).is_file(), ref
