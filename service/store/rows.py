"""Rows to domain objects; secrets are opened here and sealed by the query modules."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from serverprep.service.domain import (
    Options,
    Preparation,
    PrepState,
    Secrets,
    Server,
    StepRecord,
    StepState,
)
from serverprep.service.secretbox import SecretBox
from serverprep.service.store.models import PreparationRow, ServerRow, StepRow

#: The states held by the partial unique index "one active preparation per server".
ACTIVE_STATES = sorted(s.value for s in PrepState.ACTIVE)


def server(row: ServerRow, box: SecretBox) -> Server:
    return Server(
        id=row.id,
        name=row.name,
        host=row.host,
        port=row.port,
        user=row.user,
        host_key=row.host_key,
        accept_new_host_key=row.accept_new_host_key,
        created_at=row.created_at,
        secrets=Secrets(**{name: box.open(getattr(row, name)) for name in Secrets.NAMES}),
    )


def step(row: StepRow) -> StepRecord:
    return StepRecord(
        name=row.name,
        state=StepState(row.state),
        exit_code=row.exit_code,
        message=row.message,
        started_at=row.started_at,
        finished_at=row.finished_at,
        attempts=row.attempts,
        remote_pid=row.remote_pid,
        remote_marker=row.remote_marker,
    )


def sealed_options(options: Options, box: SecretBox) -> str:
    data = options.to_json()
    for key in Options.SECRET_FIELDS:
        data[key] = box.seal(data.get(key, ""))
    return json.dumps(data)


def options(text: str, box: SecretBox) -> Options:
    data: dict[str, Any] = json.loads(text)
    for key in Options.SECRET_FIELDS:
        data[key] = box.open(data.get(key, ""))
    return Options.from_json(data)


def preparation(row: PreparationRow, server_name: str, steps: Iterable[StepRow], box: SecretBox) -> Preparation:
    return Preparation(
        id=row.id,
        server=server_name,
        server_id=row.server_id,
        state=PrepState(row.state),
        options=options(row.options, box),
        steps=[step(s) for s in sorted(steps, key=lambda s: s.position)],
        request_id=row.request_id or "",
        attempt=row.attempt,
        os=json.loads(row.os),
        facts=json.loads(row.facts),
        reason=row.reason,
        message=row.message,
        failed_step=row.failed_step,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        last_seq=row.last_seq,
        owner=row.owner,
    )
