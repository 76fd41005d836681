"""Scheduled group pushes (群发): the plan, each run of it, each WeCom task a run creates, and who got what.

A run is identified by (push, scheduled_for): inserting that row is how a process claims the run, so
a run can never start twice, whatever the schedulers do. Each WeCom call is bracketed by its delivery
row (``calling`` before, ``created`` with the msgid after), so a crash between the two is detected
and reconciled on resume instead of creating the task again.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON, Column, Enum, Float, ForeignKey, Index, LargeBinary, String, Table, Text, Unicode, UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, intpk, str64, str128


def _enum(cls: type[enum.StrEnum], length: int = 16) -> Enum:
    return Enum(cls, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e])


class PushStatus(enum.StrEnum):
    """Whether a push still schedules runs."""

    ACTIVE = "active"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    FINISHED = "finished"  # a once push that ran, or a recurring one past its end


class RunStatus(enum.StrEnum):
    """Where a run is."""

    CREATING = "creating"  # resolving the audience and creating WeCom tasks
    POLLING = "polling"  # every task exists; waiting for guides to confirm and for results
    FINISHED = "finished"  # every task final, every recipient has an outcome
    FAILED = "failed"  # stopped by an error no retry can fix (recorded in ``error``)
    SKIPPED = "skipped"  # missed while the service was down, beyond the grace time
    CANCELLED = "cancelled"  # cancelled by an admin before it started


class DeliveryStatus(enum.StrEnum):
    """One add_msg_template call's life."""

    PENDING = "pending"  # planned, not called yet
    CALLING = "calling"  # recorded just before the call: a crash leaves it here, and resume reconciles
    CREATED = "created"  # WeCom answered with a msgid; waiting for the guide to confirm
    FAILED = "failed"  # WeCom refused (errcode and message kept)
    FINAL = "final"  # confirmed and results read, or past the confirmation deadline


class Outcome(enum.StrEnum):
    """What happened for one recipient (customer or group) of one run."""

    PENDING = "pending"  # in a created task, not confirmed yet
    SENT = "sent"
    NOT_FRIEND = "not_friend"  # WeCom status 2
    OVER_QUOTA = "over_quota"  # WeCom status 3: the customer already got a mass message
    UNCONFIRMED = "unconfirmed"  # the guide did not confirm before the deadline
    FAILED = "failed"  # the task could not be created (see the delivery's error)
    INVALID = "invalid"  # WeCom's fail_list: not a valid recipient
    SKIPPED_QUOTA = "skipped_quota"  # over the brand's receive quota: never sent to WeCom
    NO_GUIDE = "no_guide"  # no live guide relation (or group owner) to send through
    CAPPED = "capped"  # beyond the push's per-run cap


class Push(Base):
    """A planned push: audience, content, schedule and cap, as the admin gave them."""

    __tablename__ = "pushes"

    id: Mapped[intpk]
    name: Mapped[str128]
    # single: to customers; group: to customer groups (PROTOCOL.md §4.8 chat_type)
    chat_type: Mapped[str] = mapped_column(String(8), default="single")
    # {"kind": "segment", "segment_id"} | {"kind": "tags", "tag_ids", "match"} | {"kind": "customers",
    # "customer_ids"} | {"kind": "groups", "owners", "store_ids", "name_contains"}
    audience: Mapped[dict[str, Any]] = mapped_column(JSON)
    # {"text": "...", "attachments": [...]}: the text may use the guide's variables
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    # {"kind": "once", "at": iso} | {"kind": "cron", "cron": "m h dom mon dow", "start": iso|null, "end": iso|null}
    schedule: Mapped[dict[str, Any]] = mapped_column(JSON)
    timezone: Mapped[str64]
    cap: Mapped[int | None] = mapped_column(default=None)  # most recipients per run
    status: Mapped[PushStatus] = mapped_column(_enum(PushStatus), default=PushStatus.ACTIVE, index=True)
    version: Mapped[int] = mapped_column(default=1)  # bumped on every edit: the scheduler reschedules
    next_run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class PushRun(Base):
    """One occurrence of a push; unique per (push, scheduled_for) so it can only start once."""

    __tablename__ = "push_runs"
    __table_args__ = (UniqueConstraint("push_id", "scheduled_for", name="uq_push_runs_push_scheduled"),)

    id: Mapped[intpk]
    push_id: Mapped[int] = mapped_column(ForeignKey("pushes.id", ondelete="CASCADE"), index=True)
    scheduled_for: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    trigger: Mapped[str] = mapped_column(String(16), default="schedule")  # schedule | manual
    status: Mapped[RunStatus] = mapped_column(_enum(RunStatus), index=True)
    # What the creation phase is doing, and how far it is (the admin page's progress bar).
    phase: Mapped[str] = mapped_column(String(16), default="")
    progress_done: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int] = mapped_column(default=0)
    # The content as it went out (an edit after the run does not rewrite history).
    content: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Counts known when the tasks were created: targeted, no_guide, skipped_quota, capped, ...
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    created_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)  # all tasks created
    deadline_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)  # confirm by then
    next_poll_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None, index=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    error: Mapped[str] = mapped_column(Text, default="")
    # The process creating the run's tasks, and when it last showed progress: another process takes
    # the run over (resume) only once that is stale, so two never create the same tasks side by side.
    worker: Mapped[str] = mapped_column(String(128), default="")
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)


class PushDelivery(Base):
    """One mass-message task: one add_msg_template call for one guide (or group owner) and chunk."""

    __tablename__ = "push_deliveries"
    __table_args__ = (UniqueConstraint("run_id", "sender_userid", "chunk", name="uq_push_deliveries_run_sender_chunk"),)

    id: Mapped[intpk]
    run_id: Mapped[int] = mapped_column(ForeignKey("push_runs.id", ondelete="CASCADE"), index=True)
    sender_userid: Mapped[str64]
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"), default=None)
    chunk: Mapped[int] = mapped_column(default=0)
    targets: Mapped[int] = mapped_column(default=0)
    status: Mapped[DeliveryStatus] = mapped_column(_enum(DeliveryStatus), default=DeliveryStatus.PENDING)
    msgid: Mapped[str | None] = mapped_column(String(64), default=None)
    attempts: Mapped[int] = mapped_column(default=0)
    call_started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    created_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    error_code: Mapped[int | None] = mapped_column(default=None)
    error: Mapped[str] = mapped_column(String(512), default="")
    task_status: Mapped[int] = mapped_column(default=0)  # get_groupmsg_task: 0 not sent, else sent
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)
    reminded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=None)


class PushRecipient(Base):
    """One customer (or group) of one run and its outcome; ``at`` is when the run went out (for quotas)."""

    __tablename__ = "push_recipients"
    __table_args__ = (Index("ix_push_recipients_customer_at", "customer_id", "at"),)

    run_id: Mapped[int] = mapped_column(ForeignKey("push_runs.id", ondelete="CASCADE"), primary_key=True)
    target: Mapped[str64] = mapped_column(primary_key=True)  # external_userid, or chat_id for groups
    customer_id: Mapped[int | None] = mapped_column(default=None)
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("push_deliveries.id", ondelete="SET NULL"), default=None, index=True)
    sender_userid: Mapped[str] = mapped_column(String(64), default="")
    outcome: Mapped[Outcome] = mapped_column(_enum(Outcome))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


# APScheduler 3's SQLAlchemyJobStore table, declared here so Alembic owns it (the job store only
# creates it when missing); the shape must match apscheduler/jobstores/sqlalchemy.py.
apscheduler_jobs = Table(
    "apscheduler_jobs",
    Base.metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)
