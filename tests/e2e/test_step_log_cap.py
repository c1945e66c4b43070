"""A step that writes far more log than KFP_BACKEND_STEP_LOG_MAX_BYTES, against a live `kfp-backend serve`:
while it runs, several readers at once stream its whole log (and its tail by byte range) without the server's
memory growing with the log; once it ends, its stored log is its head and tail around the marker line, and
reads of it stay as small."""

from __future__ import annotations

import hashlib
import re
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import kfp
import requests
from kfp import dsl

from kfp_backend.executor.step_logs import marker
from tests.e2e.helpers import wait_for
from tests.e2e.run_checks import wait_for_run, workflow_nodes
from tests.e2e.servers import free_port, start_server, stop_server

CAP = 8 << 20
LINES = 6_000_000  # `seq` writes ~47 MB: nearly six times the cap
LAST_LINE = b"all written\n"
READERS = 4
# What the server's resident memory may grow by while READERS read at once; reading the log into memory
# (as the server did) costs the log's size per reader.
MEMORY_BOUND = 6 << 20


def _pipeline(release: Path, lines: int = LINES):  # type: ignore[no-untyped-def]
    @dsl.pipeline(name="long-log")
    def long_log() -> None:
        # Writes its log, then waits (running) until the test releases it.
        dsl.ContainerOp(
            name="chatty", image="alpine",
            command=["sh", "-c", f"seq 1 {lines}; echo {LAST_LINE.decode().strip()}; "
                                 f"while [ ! -e {release} ]; do sleep 0.05; done"],
        )
    return long_log


def _start_server(data_dir: Path, port: int, log_path: Path, cap: int) -> subprocess.Popen:
    return start_server(port, data_dir, log_path, env={"KFP_BACKEND_STEP_LOG_MAX_BYTES": str(cap)})


def _running_step(client: kfp.Client, run_id: str) -> dict:
    def chatty() -> dict | None:
        found = [n for n in workflow_nodes(client.get_run(run_id)) if n.get("displayName") == "chatty"]
        return found[0] if found else None

    wait_for(lambda: (chatty() or {}).get("phase") == "Running", 60, "the step never started")
    node = chatty()
    assert node is not None
    return node


def _expected_log() -> bytes:
    return b"".join(b"%d\n" % number for number in range(1, LINES + 1)) + LAST_LINE


def _status_kib(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB$", text, re.MULTILINE)
    assert match, text
    return int(match.group(1))


def _peak_growth_while(pid: int, action) -> int:  # type: ignore[no-untyped-def]
    """How far the process's peak resident memory rose above its resident memory before `action`, in bytes."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _status_kib(pid, "VmRSS")
    action()
    return (_status_kib(pid, "VmHWM") - before) * 1024


def _read_whole(url: str) -> tuple[int, str]:
    """Stream the whole log in blocks: its length and sha256 (the reader holds one block at a time)."""
    digest = hashlib.sha256()
    length = 0
    with requests.get(url, stream=True, timeout=60) as response:
        assert response.status_code == 200, response.text
        assert int(response.headers["Content-Length"]) > 0
        for block in response.iter_content(64 * 1024):
            digest.update(block)
            length += len(block)
        assert length == int(response.headers["Content-Length"])
    return length, digest.hexdigest()


def _read_at_once(urls: list[str]) -> list[tuple[int, str]]:
    with ThreadPoolExecutor(len(urls)) as pool:
        return list(pool.map(_read_whole, urls))


def _tail(url: str, count: int) -> requests.Response:
    response = requests.get(url, headers={"Range": f"bytes=-{count}"}, timeout=10)
    assert response.status_code in (200, 206), response.text
    return response


def test_a_log_far_over_the_cap_is_streamed_and_capped(tmp_path: Path) -> None:
    expected = _expected_log()
    expected_digest = hashlib.sha256(expected).hexdigest()
    assert len(expected) > 5 * CAP
    release = Path("/var/tmp") / f"kfp-log-cap-{uuid.uuid4().hex[:12]}"  # a host path the step sees
    port = free_port()
    data_dir = tmp_path / "data"
    server = _start_server(data_dir, port, tmp_path / "server.log", CAP)
    try:
        client = kfp.Client(host=f"http://127.0.0.1:{port}")
        run_id = client.create_run_from_pipeline_func(_pipeline(release), arguments={}, run_name="long-log").run_id
        node = _running_step(client, run_id)
        url = f"http://127.0.0.1:{port}/apis/v1beta1/runs/{run_id}/nodes/{node['id']}/log"
        wait_for(lambda: _tail(url, len(LAST_LINE)).content == LAST_LINE, 60, "the step never wrote its log")

        # While the step runs, its whole log (nearly six times the cap), by several readers at once.
        reads: list[tuple[int, str]] = []
        growth = _peak_growth_while(server.pid, lambda: reads.extend(_read_at_once([url] * READERS)))
        assert growth < MEMORY_BOUND, f"the server grew by {growth} bytes while {READERS} readers read the log"
        assert reads == [(len(expected), expected_digest)] * READERS
        tail = _tail(url, 100)
        assert tail.status_code == 206 and tail.content == expected[-100:]
        assert tail.headers["Content-Range"] == f"bytes {len(expected) - 100}-{len(expected) - 1}/{len(expected)}"

        release.touch()
        detail = wait_for_run(client, run_id, timeout=120)
        assert detail.run.status == "Succeeded"

        # Stored: its head and tail around the marker, within the cap.
        stored = data_dir / "runs" / run_id / node["id"] / "log"
        assert stored.stat().st_size <= CAP
        growth = _peak_growth_while(server.pid, lambda: _read_at_once([url] * READERS))
        assert growth < MEMORY_BOUND, f"the server grew by {growth} bytes while {READERS} readers read the log"
        capped = requests.get(url, timeout=30).content
        assert capped == stored.read_bytes()
        (marker_line,) = [line for line in capped.splitlines(keepends=True) if line.startswith(b"[kfp-backend: ")]
        head, _, tail_part = capped.partition(marker_line)
        cut = len(expected) - len(head) - len(tail_part)
        assert marker_line == marker(cut, CAP)
        assert expected.startswith(head) and expected.endswith(tail_part)
        assert head.startswith(b"1\n2\n3\n") and tail_part.endswith(b"%d\n" % LINES + LAST_LINE)
        assert len(head) > CAP // 2 - 8192 and len(tail_part) > CAP // 2 - 8192

        # By byte range: the head, the tail, and a range past the end.
        first = requests.get(url, headers={"Range": "bytes=0-5"}, timeout=10)
        assert (first.status_code, first.content) == (206, b"1\n2\n3\n")
        assert _tail(url, len(LAST_LINE)).content == LAST_LINE
        past = requests.get(url, headers={"Range": f"bytes={len(capped)}-"}, timeout=10)
        assert past.status_code == 416 and past.json()["code"] == 11
        assert past.headers["Content-Range"] == f"bytes */{len(capped)}"
    finally:
        release.touch()
        stop_server(server)
        release.unlink(missing_ok=True)


def test_a_step_that_ended_while_the_server_was_down_has_its_log_capped_by_the_next(tmp_path: Path) -> None:
    cap, lines = 64 * 1024, 200_000  # ~1.3 MB of log
    release = Path("/var/tmp") / f"kfp-log-cap-{uuid.uuid4().hex[:12]}"
    port = free_port()
    data_dir = tmp_path / "data"
    server = _start_server(data_dir, port, tmp_path / "server.log", cap)
    try:
        client = kfp.Client(host=f"http://127.0.0.1:{port}")
        run_id = client.create_run_from_pipeline_func(_pipeline(release, lines), arguments={},
                                                      run_name="long-log").run_id
        node = _running_step(client, run_id)
        url = f"http://127.0.0.1:{port}/apis/v1beta1/runs/{run_id}/nodes/{node['id']}/log"
        wait_for(lambda: _tail(url, len(LAST_LINE)).content == LAST_LINE, 60, "the step never wrote its log")
        stop_server(server)  # a graceful stop leaves the step running
        release.touch()  # it ends while no server watches it
        stored = data_dir / "runs" / run_id / node["id"] / "log"
        expected = b"".join(b"%d\n" % number for number in range(1, lines + 1)) + LAST_LINE
        assert stored.read_bytes() == expected

        server = _start_server(data_dir, port, tmp_path / "server.log", cap)
        assert wait_for_run(client, run_id, timeout=120).run.status == "Succeeded"
        capped = requests.get(url, timeout=10).content
        assert capped == stored.read_bytes() and len(capped) <= cap
        (marker_line,) = [line for line in capped.splitlines(keepends=True) if line.startswith(b"[kfp-backend: ")]
        head, _, tail = capped.partition(marker_line)
        assert marker_line == marker(len(expected) - len(head) - len(tail), cap)
        assert expected.startswith(head) and expected.endswith(tail) and tail.endswith(LAST_LINE)
    finally:
        release.touch()
        stop_server(server)
        release.unlink(missing_ok=True)
