"""step_logs.cap_log: a log over the cap keeps its head and tail around one marker line, in bounded memory,
atomically, and capping again cuts nothing more."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from kfp_backend.executor.step_logs import ALIGN_WINDOW, cap_log, marker

CAP = 64 * 1024


def numbered_lines(count: int) -> bytes:
    return b"".join(b"line %d\n" % number for number in range(1, count + 1))


def split_at_marker(data: bytes, cut: int, cap: int) -> tuple[bytes, bytes]:
    """(head, tail) around the one marker of a capped log, which must say `cut`."""
    line = marker(cut, cap)
    assert data.count(b"[kfp-backend: ") == 1, "exactly one marker"
    head, _, tail = data.partition(line)
    assert head + line + tail == data
    return head, tail


def test_a_log_over_the_cap_keeps_its_head_and_tail_with_an_exact_marker(tmp_path: Path) -> None:
    log = tmp_path / "log"
    original = numbered_lines(100_000)
    log.write_bytes(original)
    log.chmod(0o640)

    cut = cap_log(log, CAP)

    data = log.read_bytes()
    assert len(data) <= CAP
    head, tail = split_at_marker(data, cut, CAP)
    assert original.startswith(head) and original.endswith(tail)
    assert cut == len(original) - len(head) - len(tail)
    # Cut on line boundaries, about half the cap on each side.
    assert head.endswith(b"\n") and original[len(original) - len(tail) - 1:][:1] == b"\n"
    assert head.startswith(b"line 1\nline 2\n") and tail.endswith(b"line 100000\n")
    assert len(data) > CAP - 2 * 100, "only a line's worth each side is given up to align the cut"
    slack = ALIGN_WINDOW + len(marker(len(original), CAP)) + 1
    assert CAP // 2 - slack <= len(head) <= CAP // 2 and CAP // 2 - slack <= len(tail) <= CAP // 2
    expected_marker = (f"[kfp-backend: {cut} bytes cut here: the log was longer than "
                       f"KFP_BACKEND_STEP_LOG_MAX_BYTES ({CAP} bytes); its head and tail are kept]\n")
    assert data == head + expected_marker.encode() + tail
    assert log.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log"], "nothing left beside the log"


def test_capping_again_cuts_nothing(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_bytes(numbered_lines(50_000))
    assert cap_log(log, CAP) > 0
    capped = log.read_bytes()
    inode = log.stat().st_ino
    assert cap_log(log, CAP) == 0
    assert log.read_bytes() == capped and log.stat().st_ino == inode


@pytest.mark.parametrize("size", [0, 1, CAP - 1, CAP])
def test_a_log_within_the_cap_is_left_alone(tmp_path: Path, size: int) -> None:
    log = tmp_path / "log"
    log.write_bytes(b"x" * size)
    before = log.stat()
    assert cap_log(log, CAP) == 0
    after = log.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, size, before.st_mtime_ns)


def test_no_cap_no_log_and_a_cap_too_small(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_bytes(numbered_lines(20_000))
    assert cap_log(log, 0) == 0 and log.read_bytes() == numbered_lines(20_000)
    assert cap_log(tmp_path / "missing", CAP) == 0
    with pytest.raises(ValueError, match="4096"):
        cap_log(log, 100)


def test_a_log_without_newlines_is_cut_on_character_boundaries(tmp_path: Path) -> None:
    log = tmp_path / "log"
    original = "é€😀".encode() * 20_000  # 2-, 3- and 4-byte characters, no newline anywhere
    log.write_bytes(original)
    cut = cap_log(log, CAP)
    head, tail = split_at_marker(log.read_bytes(), cut, CAP)
    assert head.endswith(b"\n")  # the marker starts a line of its own
    head = head[:-1]
    head.decode(), tail.decode()  # whole characters on both sides
    assert original.startswith(head) and original.endswith(tail)
    assert cut == len(original) - len(head) - len(tail)


def test_capping_holds_one_chunk_in_memory(tmp_path: Path) -> None:
    log = tmp_path / "log"
    with log.open("wb") as file:
        for _ in range(40):
            file.write(numbered_lines(60_000))  # ~40 x 0.6 MB
    size = log.stat().st_size
    tracemalloc.start()
    try:
        cut = cap_log(log, 16 << 20, chunk_bytes=256 << 10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert cut == size - (log.stat().st_size - len(marker(cut, 16 << 20)))
    assert peak < 1 << 20, f"{peak} bytes allocated while capping a {size}-byte log to 16 MiB"


def test_a_failed_capping_leaves_the_log_whole(tmp_path: Path) -> None:
    log = tmp_path / "log"
    original = numbered_lines(20_000)
    log.write_bytes(original)
    (tmp_path / "log.capping").mkdir()  # where the capped log is written: it cannot be
    with pytest.raises(OSError):
        cap_log(log, CAP)
    assert log.read_bytes() == original
    (tmp_path / "log.capping").rmdir()
    (tmp_path / "log.capping").write_bytes(b"left by a crash midway")
    assert cap_log(log, CAP) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log"]


def test_a_link_where_the_capped_log_is_written_is_not_followed(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_bytes(numbered_lines(20_000))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"not the log's")
    (tmp_path / "log.capping").symlink_to(elsewhere)
    assert cap_log(log, CAP) > 0
    assert elsewhere.read_bytes() == b"not the log's" and not log.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "log"]


def test_a_reader_of_the_log_before_the_cap_reads_it_whole(tmp_path: Path) -> None:
    log = tmp_path / "log"
    original = numbered_lines(20_000)
    log.write_bytes(original)
    with log.open("rb") as reader:
        first = reader.read(1000)
        assert cap_log(log, CAP) > 0
        assert first + reader.read() == original
    assert os.path.getsize(log) <= CAP
