"""LocalArtifactStore: Argo-style .tgz archives of files and directories under safe keys."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from kfp_backend.executor.artifacts import ArtifactKeyError, ArtifactStore, LocalArtifactStore

KEY = "artifacts/my-wf-abc12/my-wf-abc12-123456/producer-Output.tgz"


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "store")


def test_file_round_trip(store: LocalArtifactStore, tmp_path: Path) -> None:
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


def test_size_is_the_stored_archive_length(store: LocalArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "data"
    source.write_bytes(b"payload" * 1000)
    assert store.size(KEY) is None
    store.put(KEY, source)
    assert store.size(KEY) == len(store.read(KEY) or b"") > 0
    assert store.size(KEY.rsplit("/", 1)[0]) is None  # a directory is no artifact
    assert store.size(KEY + "/below") is None


def test_directory_round_trip(store: LocalArtifactStore, tmp_path: Path) -> None:
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


def test_read_returns_an_argo_style_tgz(store: LocalArtifactStore, tmp_path: Path) -> None:
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


def test_get_of_a_foreign_archive(store: LocalArtifactStore, tmp_path: Path) -> None:
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
    target = store.root / "artifacts/x.tgz"
    target.parent.mkdir(parents=True)
    target.write_bytes(buffer.getvalue())
    store.get("artifacts/x.tgz", tmp_path / "dest")
    assert (tmp_path / "dest" / "w.bin").read_bytes() == b"weights"


def test_get_refuses_an_escaping_archive(store: LocalArtifactStore, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escaped")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    (store.root / "bad.tgz").write_bytes(buffer.getvalue())
    with pytest.raises(ValueError):
        store.get("bad.tgz", tmp_path / "sub" / "dest")
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "sub" / "escaped").exists()


@pytest.mark.parametrize(
    "key", ["", "/etc/passwd", "../outside.tgz", "a/../../outside.tgz", "a/./b", "a//b", "a\\b", "a/..", "a\x00"]
)
def test_keys_cannot_escape_the_root(store: LocalArtifactStore, tmp_path: Path, key: str) -> None:
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


def test_key_through_a_symlink_out_of_the_root(store: LocalArtifactStore, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (store.root / "link").symlink_to(tmp_path / "elsewhere")
    source = tmp_path / "f"
    source.write_text("x")
    with pytest.raises(ArtifactKeyError):
        store.put("link/x.tgz", source)
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_missing_key_and_source(store: LocalArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        store.get("artifacts/missing.tgz", tmp_path / "d")
    with pytest.raises(FileNotFoundError):
        store.put(KEY, tmp_path / "does-not-exist")
    assert not store.exists(KEY)
    assert list(store.root.rglob("*.tgz")) == [] and not any(p.name.startswith(".put-") for p in store.root.rglob("*"))


def test_delete_prefix(store: LocalArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "f"
    source.write_text("x")
    keys = ["artifacts/wf-1/n1/a.tgz", "artifacts/wf-1/n2/b.tgz", "artifacts/wf-10/n1/a.tgz", "artifacts/wf-2/n/c.tgz"]
    for key in keys:
        store.put(key, source)
    assert store.delete_prefix("artifacts/wf-1/") == 2
    assert [store.exists(k) for k in keys] == [False, False, True, True]
    assert not (store.root / "artifacts/wf-1").exists()
    assert store.delete_prefix("artifacts/wf-") == 2
    assert not (store.root / "artifacts").exists()
    assert store.delete_prefix("artifacts/none/") == 0
    with pytest.raises(ArtifactKeyError):
        store.delete_prefix("../")
