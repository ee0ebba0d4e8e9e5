"""``sirst-synth.json``, the record of a built dataset (docs/method.md section 6): its one reader
and writer. Written last, it marks the dataset complete.

Its fields: ``tool``, ``version``, ``command``, ``parameters`` (``split`` included), extra fields
of the command (``noise_bank``), ``source`` (path, split, lists, fingerprint, counts, skipped ids),
``img_norm_cfg`` (mean and std of the train images) and ``counts`` (per split and per kind).
Nothing in it differs between two identical runs: how each run went (fresh or resumed, seconds)
is appended to the run log ``.sirst-synth-runs.jsonl`` beside it (:func:`append_run`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sirst_synth import __version__
from sirst_synth.errors import RecordError
from sirst_synth.store.layout import INFO_NAME, RUN_LOG_NAME


def record_path(root: Path) -> Path:
    return Path(root) / INFO_NAME


def read_record(root: Path, hint: str = "") -> dict[str, Any] | None:
    """The record of the dataset at ``root``, or None when it has none.

    Raise :class:`RecordError` (one line naming the file, then ``hint``) when it is not a JSON object.
    """
    path = record_path(root)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"{path}: not valid JSON ({exc}){'; ' + hint if hint else ''}") from None
    if not isinstance(data, dict):
        raise RecordError(f"{path}: not a JSON object{'; ' + hint if hint else ''}")
    return data


def recorded_split(record: dict[str, Any] | None) -> str | None:
    """The split folder a record names (its parameters', else its source's), or None."""
    if not record:
        return None
    parameters = record.get("parameters")
    split = parameters.get("split") if isinstance(parameters, dict) else None
    if not split:
        source = record.get("source")
        split = source.get("split") if isinstance(source, dict) else None
    return split if isinstance(split, str) else None


def record_text(info: dict[str, Any]) -> str:
    """The record as written: tool and version first, two-space indent, a final newline."""
    return json.dumps({"tool": "sirst-synth", "version": __version__, **info}, indent=2, sort_keys=False) + "\n"


def run_log_path(root: Path) -> Path:
    return Path(root) / RUN_LOG_NAME


def append_run(root: Path, entry: dict[str, Any]) -> None:
    """Append one run (``command``, ``mode``, ``seconds``, ...) to the run log of ``root``."""
    with open(run_log_path(root), "a", encoding="utf-8", newline="\n") as fh:
        fh.write(json.dumps(entry, sort_keys=False) + "\n")


def read_runs(root: Path) -> list[dict[str, Any]]:
    """The runs of the run log of ``root``, oldest first; lines that are not JSON objects are left out."""
    try:
        text = run_log_path(root).read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return []
    runs = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            runs.append(entry)
    return runs
