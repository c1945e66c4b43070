"""The ArtifactStore contract, over the local store and the S3 store (on moto's S3 server): Argo-style .tgz
archives of files and directories under safe keys, streamed reads, deletion by prefix."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from kfp_backend.executor.artifacts import ArtifactKeyError, ArtifactStore, LocalArtifactStore
from tests.s3_server import Bucket

KEY = "artifacts/my-wf-abc12/my-wf-abc12-123456/producer-Output.tgz"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "store")
    from kfp_backend.executor.s3_artifacts import S3ArtifactStore

    bucket: Bucket = request.getfixturevalue("s3_bucket")
    return S3ArtifactStore(bucket.name, "some/prefix", endpoint_url=bucket.endpoint)


def write_raw(store: ArtifactStore, key: str, data: bytes) -> None:
    """An object put in the store by someone else (Argo, an operator)."""
    if isinstance(store, LocalArtifactStore):
        target = store.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    else:
        store.client.put_object(Bucket=store.bucket, Key=store.prefix + key, Body=data)  # type: ignore[attr-defined]


def test_file_round_trip(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "out" / "data"
    source.parent.mkdir()
    source.write_bytes(b"hello\x00world\n")
    assert isinstance(store, ArtifactStore) and not store.exists(KEY)
    store.put(KEY, source)
    assert store.exists(KEY)
    destination = tmp_path / "consumer" / "inputs" / "x" / "data"
    store.get(KEY, destination)
    assert destination.is_file() and destination.read_bytes() == b"hello\x00world\n"
    # Getting again replaces what is there, even a directory.
    destination.unlink()
    destination.mkdir()
    store.get(KEY, destination)
    assert destination.read_bytes() == b"hello\x00world\n"
    assert [p.name for p in destination.parent.iterdir()] == ["data"]  # no scratch left behind


def test_size_is_the_stored_archive_length(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "data"
    source.write_bytes(b"payload" * 1000)
    assert store.size(KEY) is None
    store.put(KEY, source)
    assert store.size(KEY) == len(store.read(KEY) or b"") > 0
    assert store.size(KEY.rsplit("/", 1)[0]) is None  # a directory is no artifact
    assert store.size(KEY + "/below") is None


def test_directory_round_trip(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "out" / "data"
    (source / "sub" / "empty").mkdir(parents=True)
    (source / "a.txt").write_text("a")
    (source / "sub" / "b.bin").write_bytes(bytes(range(256)))
    (source / "run.sh").write_text("#!/bin/sh\n")
    (source / "run.sh").chmod(0o755)
    store.put(KEY, source)
    destination = tmp_path / "in" / "data"
    store.get(KEY, destination)
    assert destination.is_dir()
    assert sorted(str(p.relative_to(destination)) for p in destination.rglob("*")) == [
        "a.txt",
        "run.sh",
        "sub",
        "sub/b.bin",
        "sub/empty",
    ]
    assert (destination / "sub" / "b.bin").read_bytes() == bytes(range(256))
    assert (destination / "run.sh").stat().st_mode & 0o111


def test_read_returns_an_argo_style_tgz(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "data"
    source.write_text("42\n")
    store.put(KEY, source)
    raw = store.read(KEY)
    assert raw is not None and raw[:2] == b"\x1f\x8b"  # gzip
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["data"]
        extracted = tar.extractfile(members[0])
        assert extracted is not None and extracted.read() == b"42\n"
    assert store.read("artifacts/none.tgz") is None


def test_get_of_a_foreign_archive(store: ArtifactStore, tmp_path: Path) -> None:
    """An archive written by Argo (a dir entry and its files) unpacks the same way."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        folder = tarfile.TarInfo("model")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        data = b"weights"
        info = tarfile.TarInfo("model/w.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    write_raw(store, "artifacts/x.tgz", buffer.getvalue())
    store.get("artifacts/x.tgz", tmp_path / "dest")
    assert (tmp_path / "dest" / "w.bin").read_bytes() == b"weights"


def test_get_refuses_an_escaping_archive(store: ArtifactStore, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escaped")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    write_raw(store, "bad.tgz", buffer.getvalue())
    with pytest.raises(ValueError):
        store.get("bad.tgz", tmp_path / "sub" / "dest")
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "sub" / "escaped").exists()


@pytest.mark.parametrize(
    "key", ["", "/etc/passwd", "../outside.tgz", "a/../../outside.tgz", "a/./b", "a//b", "a\\b", "a/..", "a\x00"]
)
def test_keys_cannot_escape_the_root(store: ArtifactStore, tmp_path: Path, key: str) -> None:
    source = tmp_path / "f"
    source.write_text("x")
    with pytest.raises(ArtifactKeyError):
        store.put(key, source)
    with pytest.raises(ArtifactKeyError):
        store.read(key)
    with pytest.raises(ArtifactKeyError):
        store.exists(key)
    with pytest.raises(ArtifactKeyError):
        store.get(key, tmp_path / "d")


def test_key_through_a_symlink_out_of_the_root(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    (tmp_path / "elsewhere").mkdir()
    (store.root / "link").symlink_to(tmp_path / "elsewhere")
    source = tmp_path / "f"
    source.write_text("x")
    with pytest.raises(ArtifactKeyError):
        store.put("link/x.tgz", source)
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_missing_key_and_source(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        store.get("artifacts/missing.tgz", tmp_path / "d")
    with pytest.raises(FileNotFoundError):
        store.put(KEY, tmp_path / "does-not-exist")
    assert not store.exists(KEY)
    if isinstance(store, LocalArtifactStore):
        assert list(store.root.rglob("*.tgz")) == []
        assert not any(p.name.startswith(".put-") for p in store.root.rglob("*"))
    else:
        assert store.delete_prefix("") == 0  # nothing was uploaded


def test_delete_prefix(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "f"
    source.write_text("x")
    keys = ["artifacts/wf-1/n1/a.tgz", "artifacts/wf-1/n2/b.tgz", "artifacts/wf-10/n1/a.tgz", "artifacts/wf-2/n/c.tgz"]
    for key in keys:
        store.put(key, source)
    assert store.delete_prefix("artifacts/wf-1/") == 2
    assert [store.exists(k) for k in keys] == [False, False, True, True]
    assert not isinstance(store, LocalArtifactStore) or not (store.root / "artifacts/wf-1").exists()
    assert store.delete_prefix("artifacts/wf-") == 2
    assert not isinstance(store, LocalArtifactStore) or not (store.root / "artifacts").exists()
    assert store.delete_prefix("artifacts/none/") == 0
    with pytest.raises(ArtifactKeyError):
        store.delete_prefix("../")


def test_open_streams_the_stored_object(store: ArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "data"
    source.write_bytes(bytes(range(256)) * 4000)
    store.put(KEY, source)
    whole = store.read(KEY)
    opened = store.open(KEY)
    assert whole is not None and opened is not None
    file, size = opened
    with file:
        assert size == len(whole) == store.size(KEY)
        assert file.read(10) == whole[:10]
        file.seek(size - 7)
        assert file.read(100) == whole[-7:] and file.read(5) == b""
        file.seek(100)
        assert file.read() == whole[100:]
    assert store.open("artifacts/none.tgz") is None


def test_put_file_stores_the_bytes_as_they_are(store: ArtifactStore, tmp_path: Path) -> None:
    log = tmp_path / "main.log"
    log.write_bytes(b"line one\nline two\n")
    store.put_file("artifacts/run/node/main.log", log)
    log.write_bytes(b"replaced\n")
    store.put_file("artifacts/run/node/main.log", log)
    assert store.read("artifacts/run/node/main.log") == b"replaced\n"
    assert store.delete_prefix("artifacts/run/") == 1


def test_the_s3_store_keeps_to_its_prefix(s3_bucket: Bucket, tmp_path: Path) -> None:
    from kfp_backend.executor.s3_artifacts import S3ArtifactStore

    source = tmp_path / "f"
    source.write_text("x")
    mine, neighbour = (S3ArtifactStore(s3_bucket.name, prefix, endpoint_url=s3_bucket.endpoint)
                       for prefix in ("team-a", "team-a-old/"))
    mine.put("artifacts/r/n/a.tgz", source)
    neighbour.put("artifacts/r/n/a.tgz", source)
    listed = s3_bucket.client.list_objects_v2(Bucket=s3_bucket.name)["Contents"]  # type: ignore[attr-defined]
    assert sorted(item["Key"] for item in listed) == ["team-a-old/artifacts/r/n/a.tgz", "team-a/artifacts/r/n/a.tgz"]
    assert mine.delete_prefix("") == 1 and neighbour.exists("artifacts/r/n/a.tgz")
    assert mine.keeps_logs and not LocalArtifactStore(tmp_path / "local").keeps_logs


def test_the_s3_store_deletes_a_prefix_across_pages(s3_bucket: Bucket) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from kfp_backend.executor.s3_artifacts import S3ArtifactStore

    store = S3ArtifactStore(s3_bucket.name, "p", endpoint_url=s3_bucket.endpoint)
    client = s3_bucket.client
    keys = [f"p/artifacts/run-1/n{index:04d}/a.tgz" for index in range(1234)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=s3_bucket.name, Key=key, Body=b"x"), keys))  # type: ignore[attr-defined]
    client.put_object(Bucket=s3_bucket.name, Key="p/artifacts/run-2/n/a.tgz", Body=b"x")  # type: ignore[attr-defined]
    assert store.delete_prefix("artifacts/run-1/") == 1234
    assert store.delete_prefix("artifacts/run-1/") == 0
    assert store.exists("artifacts/run-2/n/a.tgz")


def test_the_s3_store_streams_big_objects_within_a_memory_bound(s3_bucket: Bucket, tmp_path: Path) -> None:
    """Upload, download and a streamed read of a 48 MiB object each hold a few parts at most in memory."""
    import tracemalloc

    from kfp_backend.executor.s3_artifacts import PART_BYTES, S3ArtifactStore

    store = S3ArtifactStore(s3_bucket.name, "big", endpoint_url=s3_bucket.endpoint)
    size = 48 << 20
    log = tmp_path / "big.log"
    with log.open("wb") as file:
        block = bytes(range(256)) * 4096  # 1 MiB
        for _ in range(size // len(block)):
            file.write(block)
    tracemalloc.start()
    try:
        store.put_file("artifacts/r/n/main.log", log)
        _, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        opened = store.open("artifacts/r/n/main.log")
        assert opened is not None and opened[1] == size
        file, _ = opened
        read = 0
        with file:
            while chunk := file.read(256 * 1024):
                read += len(chunk)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert read == size
    assert upload_peak < 2 * PART_BYTES, upload_peak  # a part in flight, not the object
    assert read_peak < 4 << 20, read_peak
