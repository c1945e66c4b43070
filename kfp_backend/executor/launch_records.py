"""What a launch leaves in the step's directory, and reading it back.

`exit_code`: the wrapper's stdout; its first line is the launch record ("pid start-time boot-id
started-at") when the wrapper writes it, its last the step's exit status. `pid`: the launch record when
the launcher writes it (shell wrapper). `collected`: `exit_code` renamed once the driver has taken the
result. `killed`: why the launcher killed the step. `log`: the step's stdout and stderr.
`placeholders.json`: the empty output files made for the step, removed when it never wrote them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from kfp_backend.executor.launcher import DEADLINE_MESSAGE, TERMINATED_MESSAGE, VANISHED_MESSAGE, StepResult
from kfp_backend.executor.process_groups import BOOT_ID, proc_stat

log = logging.getLogger(__name__)

LOG_FILE = "log"
EXIT_CODE_FILE = "exit_code"
COLLECTED_FILE = "collected"  # exit_code, renamed once the driver has taken the result
PID_FILE = "pid"  # the launch record, when the launcher writes it (shell wrapper)
KILLED_FILE = "killed"
PLACEHOLDERS_FILE = "placeholders.json"

# Why the launcher killed a step (the content of `killed`).
DEADLINE = "deadline"
TERMINATED = "terminated"


@dataclass(frozen=True)
class LaunchRecord:
    pid: int
    start_ticks: int
    boot_id: str
    started_at: float

    def is_running(self) -> bool:
        """The very process recorded at launch is still alive (not a zombie, not a reused pid)."""
        if self.boot_id != BOOT_ID:
            return False
        stat = proc_stat(self.pid)
        return stat is not None and stat[0] not in ("Z", "X") and stat[2] == self.start_ticks


def _read_records(work_dir: Path) -> list[str]:
    """The lines of the step's status file (`exit_code`, or `collected` once the result was taken); only
    whole lines: a line still being written has no newline yet."""
    for name in (EXIT_CODE_FILE, COLLECTED_FILE):
        try:
            text = (Path(work_dir) / name).read_text()
        except FileNotFoundError:
            continue
        except OSError:
            return []
        return text.split("\n")[:-1]
    return []


def read_launch_record(work_dir: Path) -> LaunchRecord | None:
    try:
        line = (Path(work_dir) / PID_FILE).read_text()
    except FileNotFoundError:
        records = _read_records(work_dir)  # written by the wrapper: the first line of the status file
        line = records[0] if records else ""
    except OSError:
        return None
    try:
        pid, ticks, boot_id, started_at = line.split()
        return LaunchRecord(int(pid), int(ticks), boot_id, float(started_at))
    except ValueError:
        return None


def write_launch_record(work_dir: Path, pid: int, started_at: float) -> None:
    """The launcher's own launch record (shell wrapper), right after the spawn."""
    stat = proc_stat(pid)
    ticks = stat[2] if stat is not None else -1
    write_atomically(work_dir / PID_FILE, f"{pid} {ticks} {BOOT_ID} {started_at!r}\n")


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_exit_code(work_dir: Path) -> int | None:
    """The wrapper's recorded exit status: the status file's one-field line (after the launch record)."""
    for line in reversed(_read_records(work_dir)):
        fields = line.split()
        if len(fields) == 1:
            try:
                return int(fields[0])
            except ValueError:
                return None
    return None


def read_kill_reason(work_dir: Path) -> str | None:
    try:
        return (Path(work_dir) / KILLED_FILE).read_text().strip() or None
    except OSError:
        return None


def forget_earlier_attempt(work_dir: Path) -> None:
    """An earlier attempt's records in this directory must not be taken for the next one's."""
    for name in (PID_FILE, KILLED_FILE, PLACEHOLDERS_FILE, COLLECTED_FILE):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(work_dir / name)


def mark_collected(work_dir: Path, key: str) -> None:
    """The driver has taken this attempt's result: a later attempt in this directory starts afresh
    (`was_collected`). The records stay readable."""
    try:
        os.rename(work_dir / EXIT_CODE_FILE, work_dir / COLLECTED_FILE)
    except FileNotFoundError:
        with contextlib.suppress(OSError):
            os.mknod(work_dir / COLLECTED_FILE, 0o644)
    except OSError:
        log.warning("step %s: could not mark its result as collected", key, exc_info=True)


def was_collected(work_dir: Path) -> bool:
    return (Path(work_dir) / COLLECTED_FILE).exists()


def write_placeholders(work_dir: Path, paths: list[str]) -> None:
    write_atomically(work_dir / PLACEHOLDERS_FILE, json.dumps(paths))


def remove_untouched_placeholders(work_dir: Path) -> None:
    """Remove the empty host files/dirs made for outputs outside /tmp that the step never wrote."""
    listing = Path(work_dir) / PLACEHOLDERS_FILE
    try:
        paths = json.loads(listing.read_text())
    except FileNotFoundError:
        return
    for path in paths:
        try:
            st = os.lstat(path)
            if st.st_mtime_ns != 0:
                continue
            if os.path.isdir(path):
                os.rmdir(path)  # fails (and is kept) when not empty
            elif st.st_size == 0:
                os.unlink(path)
        except OSError:
            pass
    listing.unlink(missing_ok=True)


def step_result(code: int | None, kill_reason: str | None, *, signal_number: int | None = None) -> StepResult:
    """The result of an ended step from its exit status (or killing signal) and why it was killed."""
    if kill_reason == DEADLINE:
        return StepResult(code, deadline_exceeded=True, terminated=False, message=DEADLINE_MESSAGE)
    if kill_reason == TERMINATED:
        return StepResult(code, deadline_exceeded=False, terminated=True, message=TERMINATED_MESSAGE)
    if code is None:
        if signal_number is not None:
            # What a container runtime reports for a main process killed by a signal.
            return StepResult(None, False, False, message=f"Error (exit code {128 + signal_number})")
        return StepResult(None, False, False, vanished=True, message=VANISHED_MESSAGE)
    return StepResult(code, False, False, message="" if code == 0 else f"Error (exit code {code})")
