"""Wire schemas of JobService (see api/schemas.py for the conventions)."""

from __future__ import annotations

import enum
from typing import Any

from marshmallow import ValidationError, fields, validates_schema

from kfp_backend.api.schemas import Enum, Int64, ProtoSchema, Timestamp, format_timestamp
from kfp_backend.api.spec_schemas import SpecRequestSchema, dump_spec_fields
from kfp_backend.services.jobs import (
    TRIGGER_CRON,
    TRIGGER_NONE,
    TRIGGER_PERIODIC,
    JobView,
    NewJob,
    NewTrigger,
)


class JobMode(enum.IntEnum):
    """api.Job.Mode: accepted on input, ignored (upstream never sets or reads it)."""

    UNKNOWN_MODE = 0
    ENABLED = 1
    DISABLED = 2


class Bool(fields.Field):
    """A proto bool: JSON true or false (jsonpb also reads the strings "true" and "false")."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise ValidationError(f"expected a boolean, got {value!r}")


# google.protobuf.Timestamp's range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
TIMESTAMP_MIN, TIMESTAMP_MAX = -62135596800, 253402300799


class ScheduleTime(Timestamp):
    """A schedule's start or end time: an RFC 3339 time within google.protobuf.Timestamp's range."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        seconds = super()._deserialize(value, attr, data, **kwargs)
        if not TIMESTAMP_MIN <= seconds <= TIMESTAMP_MAX:
            raise ValidationError(f"timestamp {value!r} is outside 0001-01-01T00:00:00Z..9999-12-31T23:59:59Z")
        return seconds


class CronScheduleSchema(ProtoSchema):
    start_time = ScheduleTime(load_default=None)
    end_time = ScheduleTime(load_default=None)
    cron = fields.String(load_default="")


class PeriodicScheduleSchema(ProtoSchema):
    start_time = ScheduleTime(load_default=None)
    end_time = ScheduleTime(load_default=None)
    interval_second = Int64(load_default=0)


class TriggerSchema(ProtoSchema):
    cron_schedule = fields.Nested(CronScheduleSchema, load_default=None)
    periodic_schedule = fields.Nested(PeriodicScheduleSchema, load_default=None)

    @validates_schema
    def _one_of(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("cron_schedule") is not None and data.get("periodic_schedule") is not None:
            raise ValidationError("trigger: set cron_schedule or periodic_schedule, not both (they are a oneof)")


class JobRequestSchema(SpecRequestSchema):
    """The body of CreateJob (an api.Job); output-only fields are ignored."""

    max_concurrency = Int64(load_default=0)
    trigger = fields.Nested(TriggerSchema, load_default=None)
    mode = Enum(JobMode, load_default=JobMode.UNKNOWN_MODE)
    enabled = Bool(load_default=False)
    no_catchup = Bool(load_default=False)

    def to_new_job(self, body: dict[str, Any]) -> NewJob:
        return NewJob(
            **self.spec_fields(body),
            max_concurrency=body["max_concurrency"],
            trigger=to_trigger(body["trigger"] or {}),
            enabled=body["enabled"],
            no_catchup=body["no_catchup"],
        )


def to_trigger(trigger: dict[str, Any]) -> NewTrigger:
    cron = trigger.get("cron_schedule")
    if cron is not None:
        return NewTrigger(TRIGGER_CRON, cron=cron["cron"], start_time=cron["start_time"], end_time=cron["end_time"])
    periodic = trigger.get("periodic_schedule")
    if periodic is not None:
        return NewTrigger(
            TRIGGER_PERIODIC,
            interval_seconds=periodic["interval_second"],
            start_time=periodic["start_time"],
            end_time=periodic["end_time"],
        )
    return NewTrigger(TRIGGER_NONE)


def dump_trigger(view: JobView) -> dict[str, Any]:
    job = view.job
    schedule: dict[str, Any] = {}
    if job.start_time:
        schedule["start_time"] = format_timestamp(job.start_time)
    if job.end_time:
        schedule["end_time"] = format_timestamp(job.end_time)
    if job.trigger_kind == TRIGGER_CRON and job.cron:
        return {"cron_schedule": {**schedule, "cron": job.cron}}
    if job.trigger_kind == TRIGGER_PERIODIC and job.interval_seconds:
        return {"periodic_schedule": {**schedule, "interval_second": str(job.interval_seconds)}}
    return {}


def dump_job(view: JobView) -> dict[str, Any]:
    """An api.Job in the gateway's field order, zero values omitted (`mode` is never set)."""
    job = view.job
    body: dict[str, Any] = {"id": job.id}
    if job.name:
        body["name"] = job.name
    body.update(dump_spec_fields(view))
    if job.max_concurrency:
        body["max_concurrency"] = str(job.max_concurrency)
    body["trigger"] = dump_trigger(view)
    body["created_at"] = format_timestamp(job.created_at)
    body["updated_at"] = format_timestamp(job.updated_at)
    if job.status:
        body["status"] = job.status
    if job.enabled:
        body["enabled"] = True
    if job.no_catchup:
        body["no_catchup"] = True
    return body
