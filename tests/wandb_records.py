"""Read an offline W&B run file (``run-*.wandb``) without a server, to check what was logged.

The file is W&B's 7-byte header followed by LevelDB-log framed protobuf ``Record`` messages
(32 KiB blocks; each chunk: crc32 (4), length (2, little endian), type (1: full, 2: first,
3: middle, 4: last)). This is what ``wandb sync`` uploads later.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2

_BLOCK = 32 * 1024
_HEADER = 7


def read_records(path: Path) -> list[Any]:
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    records, pending, pos = [], b"", _HEADER
    while pos + 7 <= len(data):
        left_in_block = _BLOCK - pos % _BLOCK
        if left_in_block < 7:
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            continue
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


def logged(path: Path) -> dict[str, Any]:
    """``{"history": [rows], "summary": {...}, "config": {...}, "artifacts": [(name, type)], "run": {...}}``
    decoded from the run file."""
    out: dict[str, Any] = {"history": [], "summary": {}, "config": {}, "artifacts": [], "run": {}}
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            out["history"].append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            out["summary"].update({_key(i): json.loads(i.value_json) for i in record.summary.update})
        elif kind == "config":
            out["config"].update({_key(i): json.loads(i.value_json) for i in record.config.update})
        elif kind == "artifact":
            out["artifacts"].append((record.artifact.name, record.artifact.type))
        elif kind == "run":
            out["run"] = {"name": record.run.display_name, "id": record.run.run_id}
    return out


def recording_wandb() -> Any:
    """An offline W&B logger that keeps what ``log_image`` is sent instead of uploading it:
    ``.images[key]`` (the list handed over) and ``.extra[key]`` (its masks=, boxes= …)."""
    from lightning.pytorch.loggers import WandbLogger

    class RecordingWandb(WandbLogger):
        def __init__(self) -> None:
            super().__init__(offline=True)
            self.images: dict[str, list] = {}
            self.extra: dict[str, dict] = {}

        def log_image(self, key: str, images: list, step: int | None = None, **kwargs: Any) -> None:
            self.images[key], self.extra[key] = images, kwargs

    return RecordingWandb()
