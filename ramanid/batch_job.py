"""The description of a batch job: its configuration, its tasks and its counts.

Shared by the parent (planning, assembly) and the workers (:mod:`ramanid.batch_task`); see
:mod:`ramanid.batch` for how a job runs.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ramanid import batch_io
from ramanid.hazard import HAZARD_RANK, is_alarm

DEFAULT_CHUNK_SIZE = 2048
#: A chunk of at least this many scans on which the engine fails for every scan stops the job.
SYSTEMIC_FAILURE = 4
JOB_FILE = "job.json"
#: Order of change kinds in the ``--since-library`` report.
CHANGE_ORDER = ("new_hazard", "hazard_changed", "hazard_cleared", "verdict_changed",
                "identity_changed")


# -- job description -----------------------------------------------------------------------------
@dataclass(frozen=True)
class JobConfig:
    """Everything a worker needs to run a task (picklable, sent to every worker).

    Attributes
    ----------
    out
        Final result file.
    fmt
        Result format: ``parquet``, ``csv`` or ``jsonl``.
    library
        Library file (None: the default library).
    old_library
        Library to compare against (``--since-library``), or None.
    chunk_size
        Scans per archive task / files per directory task.
    inputs
        Absolute input paths, in the order given.
    engine
        ``"module:function"`` of the chunk processor factory (see :func:`engine_processor`).
    """

    out: str
    fmt: str
    library: str | None
    old_library: str | None
    chunk_size: int
    inputs: tuple[str, ...]
    engine: str = "ramanid.batch_task:engine_processor"

    @property
    def parts_dir(self) -> Path:
        """Checkpoint directory beside the output."""
        return Path(self.out + ".parts")

    @property
    def summary_path(self) -> Path:
        """Summary file written next to the output when the job completes."""
        return Path(self.out + ".summary.json")

    @property
    def changes_path(self) -> Path | None:
        """Change report path (``--since-library`` only): ``<stem>.changes.<ext>``."""
        if not self.old_library:
            return None
        p = Path(self.out)
        return p.with_name(f"{p.stem}.changes{p.suffix or '.' + self.fmt}")

    def fingerprint(self) -> dict[str, Any]:
        """What must match for ``--resume`` to continue a job."""
        return {"inputs": list(self.inputs), "chunk_size": self.chunk_size, "fmt": self.fmt,
                "library": self.library, "old_library": self.old_library,
                "engine": self.engine}


@dataclass(frozen=True)
class Task:
    """One unit of work: a range of archive scans or a list of files."""

    index: int
    kind: str                       # "archive" or "files"
    path: str = ""
    start: int = 0
    stop: int = 0
    files: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        """Number of scans (archive) or files (directory) in the task."""
        return self.stop - self.start if self.kind == "archive" else len(self.files)

    @property
    def digest(self) -> str:
        """Short hash of what the task covers (a resumed job checks it is unchanged)."""
        text = json.dumps([self.kind, self.path, self.start, self.stop, list(self.files)])
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


@dataclass
class Summary:
    """Counts of a job (or of one task)."""

    scans: int = 0
    errors: int = 0
    verdicts: Counter = field(default_factory=Counter)
    hazard_levels: Counter = field(default_factory=Counter)
    hazard_substances: Counter = field(default_factory=Counter)
    changes: Counter = field(default_factory=Counter)
    error_examples: list[str] = field(default_factory=list)
    simulated: int = 0
    simulated_alarms: int = 0

    def add(self, other: Summary) -> None:
        """Add another summary's counts to this one."""
        self.scans += other.scans
        self.errors += other.errors
        self.verdicts.update(other.verdicts)
        self.hazard_levels.update(other.hazard_levels)
        self.hazard_substances.update(other.hazard_substances)
        self.changes.update(other.changes)
        self.simulated += other.simulated
        self.simulated_alarms += other.simulated_alarms
        room = 10 - len(self.error_examples)
        if room > 0:
            self.error_examples.extend(other.error_examples[:room])

    @property
    def hazards(self) -> int:
        """Number of scans that raised the alarm (hazard level high or extreme)."""
        return sum(n for level, n in self.hazard_levels.items() if is_alarm(level))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        d = asdict(self)
        for k in ("verdicts", "hazard_levels", "hazard_substances", "changes"):
            d[k] = dict(sorted(getattr(self, k).items(), key=lambda kv: (-kv[1], kv[0])))
        d["hazards"] = self.hazards
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Summary:
        """Inverse of :meth:`to_dict`."""
        return cls(scans=int(d.get("scans", 0)), errors=int(d.get("errors", 0)),
                   verdicts=Counter(d.get("verdicts", {})),
                   hazard_levels=Counter(d.get("hazard_levels", {})),
                   hazard_substances=Counter(d.get("hazard_substances", {})),
                   changes=Counter(d.get("changes", {})),
                   error_examples=list(d.get("error_examples", [])),
                   simulated=int(d.get("simulated", 0)),
                   simulated_alarms=int(d.get("simulated_alarms", 0)))

    @classmethod
    def of_table(cls, table: batch_io.Table, changes: batch_io.Table | None = None) -> Summary:
        """Counts of one result table."""
        s = cls(scans=batch_io.table_len(table))
        status = table["status"]
        err = status == "error"
        s.errors = int(err.sum())
        s.error_examples = [f"{src}: {msg}" for src, msg in
                            zip(table["source"][err][:10], table["error"][err][:10], strict=True)]
        s.verdicts = _count(table["verdict"])
        s.hazard_levels = _count(table["hazard_level"])
        # rows of an alarm level, found once per distinct level (there are a handful)
        alarm = np.zeros(s.scans, dtype=bool)
        for level in s.hazard_levels:
            if is_alarm(level):
                alarm |= table["hazard_level"] == level
        if "simulated" in table:
            sim = np.array([v is True for v in table["simulated"].tolist()], dtype=bool)
            s.simulated = int(sim.sum())
            s.simulated_alarms = int((sim & alarm).sum())
        # each distinct substance list parsed once (names counted in order of first appearance,
        # as row by row)
        for text, count in Counter(table["hazard_substances"][alarm].tolist()).items():
            for name in json.loads(text) if text else []:
                s.hazard_substances[_substance_name(name)] += count
        if changes is not None:
            s.changes = Counter(changes["change"].tolist())
        return s

    def render(self) -> str:
        """Human-readable end-of-job summary."""
        lines = [f"scans: {self.scans}    failures (unreadable / engine error): {self.errors}"]
        if self.verdicts:
            lines.append("verdicts: " + ", ".join(f"{k} {v}" for k, v in
                                                  sorted(self.verdicts.items())))
        if self.hazards:
            levels = ", ".join(f"{k} {v}" for k, v in sorted(
                self.hazard_levels.items(), key=lambda kv: -HAZARD_RANK.get(kv[0], 0))
                if is_alarm(k))
            lines.append(f"HAZARD ALARMS: {self.hazards} scans ({levels})")
            if self.simulated_alarms:
                lines.append(f"  of them from SIMULATED scans: {self.simulated_alarms} "
                             "(not real samples)")
            top = ", ".join(f"{k} {v}" for k, v in self.hazard_substances.most_common(10))
            if top:
                lines.append(f"  substances: {top}")
        else:
            lines.append("hazard alarms: 0")
        if self.changes:
            lines.append("changes since old library: " + ", ".join(
                f"{k} {self.changes[k]}" for k in CHANGE_ORDER if self.changes.get(k)))
        for ex in self.error_examples[:5]:
            lines.append(f"  failed: {ex}")
        return "\n".join(lines)


def _count(column: np.ndarray) -> Counter:
    """Occurrences of each known value (None left out), in order of first appearance."""
    counts = Counter(column.tolist())
    counts.pop(None, None)
    return counts


def _substance_name(item: Any) -> str:
    if isinstance(item, dict):
        return str(item.get("name") or item.get("id") or item)
    return str(item)

