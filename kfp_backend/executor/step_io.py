"""A step's artifact transfers and the files read after it, done by whoever runs the step.

A `StepSpec.io` (`launcher.StepIO`) declares them: store keys unpacked at in-step paths and text written
there before the step, in-step paths archived under store keys and small files read after it. Beside a
local launcher the driver does both (`place_inputs`, then reads through `LocalStepFiles`); a remote worker
does them on its side (`place_inputs`, `collect_outputs`) and the driver reads what it sent back through
`CollectedStepFiles`. Either way each artifact is moved once, by the machine that holds the step's files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from kfp_backend.executor.artifacts import ArtifactStore
from kfp_backend.executor.launcher import CollectedOutputs, StepIO

HostPath = Callable[[str], Path]  # an in-step path -> where it is on this machine

# A declared small file larger than this is not sent back (an output parameter that large is a mistake).
MAX_FILE_BYTES = 16 << 20


def place_inputs(io: StepIO, host_path: HostPath, store: ArtifactStore) -> None:
    """Make the declared directories, write the literal inputs and unpack the stored ones."""
    for directory in io.directories:
        host_path(directory).mkdir(parents=True, exist_ok=True)
    for path, text in io.raw_inputs:
        target = host_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    for key, path in io.inputs:
        store.get(key, host_path(path))


def collect_outputs(io: StepIO, host_path: HostPath, store: ArtifactStore) -> CollectedOutputs:
    """Archive the outputs that exist under their keys and read the declared small files (on the machine
    the step ran on)."""
    stored: set[str] = set()
    for path, key in io.outputs:
        host = host_path(path)
        if host.exists():
            store.put(key, host)
            stored.add(path)
    files: dict[str, bytes] = {}
    for path in io.files:
        host = host_path(path)
        if host.is_file() and host.stat().st_size <= MAX_FILE_BYTES:
            files[path] = host.read_bytes()
    return CollectedOutputs(files=files, stored=frozenset(stored))


class StepFiles(Protocol):
    """What a finished step left, as the driver reads it."""

    def read(self, path: str) -> bytes | None:
        """A small file's bytes (an output parameter, the executor output...); None when it is not there."""

    def exists(self, path: str) -> bool: ...

    def store(self, path: str, key: str) -> bool:
        """The output at `path` archived under `key` (done already for a remote step); False when absent."""


class LocalStepFiles:
    """A step that ran on this machine: its files are at their host paths."""

    def __init__(self, host_path: HostPath, artifacts: ArtifactStore) -> None:
        self._host_path = host_path
        self._artifacts = artifacts

    def read(self, path: str) -> bytes | None:
        host = self._host_path(path)
        return host.read_bytes() if host.is_file() else None

    def exists(self, path: str) -> bool:
        return self._host_path(path).exists()

    def store(self, path: str, key: str) -> bool:
        host = self._host_path(path)
        if not host.exists():
            return False
        self._artifacts.put(key, host)
        return True


class CollectedStepFiles:
    """A step that ran elsewhere: what its worker sent back."""

    def __init__(self, collected: CollectedOutputs) -> None:
        self._collected = collected

    def read(self, path: str) -> bytes | None:
        return self._collected.files.get(path)

    def exists(self, path: str) -> bool:
        return path in self._collected.stored or path in self._collected.files

    def store(self, path: str, key: str) -> bool:
        return path in self._collected.stored
