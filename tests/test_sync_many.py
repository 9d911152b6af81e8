"""Many paths made durable at once: one syncfs when that is cheaper, else one fsync each, and
every path's own outcome either way."""

from __future__ import annotations

from pathlib import Path

import pytest

from service import sync_many
from service.storage import fsync_file

needs_syncfs = pytest.mark.skipif(sync_many._syncfs is None, reason="syncfs is Linux >= 5.8")


def _files(directory: Path, count: int) -> list[Path]:
    paths = [directory / f"{n}.part" for n in range(count)]
    for n, path in enumerate(paths):
        path.write_bytes(b"id,amount\n%d,1.5\n" % n)
    return paths


class _Recorder:
    def __init__(self, sync_one: sync_many.Syncer = fsync_file) -> None:
        self.paths: list[Path] = []
        self._sync_one = sync_one

    def __call__(self, path: Path) -> None:
        self.paths.append(path)
        self._sync_one(path)


@pytest.fixture
def syncfs_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The real syncfs, its calls recorded."""
    calls: list[int] = []
    real = sync_many._syncfs
    assert real is not None

    def recording(fd: int) -> int:
        calls.append(fd)
        return real(fd)

    monkeypatch.setattr(sync_many, "_syncfs", recording)
    return calls


@needs_syncfs
def test_many_files_share_one_syncfs_while_little_is_unwritten(
    tmp_path: Path, syncfs_calls: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sync_many, "unwritten_bytes", lambda: 0)
    each = _Recorder()
    assert sync_many.sync_many(_files(tmp_path, 30), each) == [None] * 30
    assert len(syncfs_calls) == 1 and each.paths == []


@needs_syncfs
def test_each_file_gets_its_own_fsync_while_much_is_unwritten(
    tmp_path: Path, syncfs_calls: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """syncfs would also write back every other file's pages: one fsync each is cheaper."""
    unwritten = sync_many.SYNCFS_MAX_UNWRITTEN_BYTES + 1
    monkeypatch.setattr(sync_many, "unwritten_bytes", lambda: unwritten)
    paths = _files(tmp_path, 30)
    each = _Recorder()
    assert sync_many.sync_many(paths, each) == [None] * 30
    assert syncfs_calls == [] and each.paths == paths


@needs_syncfs
def test_a_few_files_get_one_fsync_each(tmp_path: Path, syncfs_calls: list[int]) -> None:
    paths = _files(tmp_path, sync_many.SYNCFS_MIN_PATHS - 1)
    each = _Recorder()
    assert sync_many.sync_many(paths, each) == [None] * len(paths)
    assert syncfs_calls == [] and each.paths == paths


@needs_syncfs
def test_a_missing_file_fails_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync_many, "unwritten_bytes", lambda: 0)
    paths = _files(tmp_path, 10)
    paths[3].unlink()
    outcomes = sync_many.sync_many(paths, fsync_file)
    assert isinstance(outcomes[3], FileNotFoundError)
    assert outcomes[:3] + outcomes[4:] == [None] * 9


@needs_syncfs
def test_when_syncfs_fails_each_file_is_tried_alone_and_keeps_its_own_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sync_many, "unwritten_bytes", lambda: 0)
    monkeypatch.setattr(sync_many, "_syncfs", lambda fd: -1)
    paths = _files(tmp_path, 8)
    broken = paths[5]

    def fsync_one(path: Path) -> None:
        if path == broken:
            raise OSError(5, "Input/output error")
        fsync_file(path)

    each = _Recorder(fsync_one)
    outcomes = sync_many.sync_many(paths, each)
    assert each.paths == paths
    assert isinstance(outcomes[5], OSError) and outcomes[5].errno == 5
    assert outcomes[:5] + outcomes[6:] == [None] * 7


def test_the_unwritten_data_is_read_where_the_system_tells_it() -> None:
    unwritten = sync_many.unwritten_bytes()
    if sync_many._syncfs is not None:
        assert unwritten is not None and unwritten >= 0


def test_each_item_gets_the_outcome_of_its_own_paths_and_a_shared_path_is_synced_once(
    tmp_path: Path,
) -> None:
    """The items of a batch (jobs, uploads): one that failed earlier is left alone, a
    directory that several share is synced once, and its failure fails each of them."""
    ok, broken = tmp_path / "ok", tmp_path / "broken"
    ok.mkdir()
    broken.mkdir()
    earlier = OSError(28, "No space left on device")
    errors: list[OSError | None] = [None, earlier, None, None]
    paths_of = {0: [ok], 1: [ok], 2: [broken], 3: [ok, broken]}

    def fsync_one(path: Path) -> None:
        if path == broken:
            raise OSError(5, "Input/output error")

    each = _Recorder(fsync_one)
    sync_many.sync_for_each(errors, lambda n: paths_of[n], each)
    assert sorted(each.paths) == sorted([ok, broken])
    assert errors[0] is None and errors[1] is earlier
    assert isinstance(errors[2], OSError) and errors[2].errno == 5
    assert errors[3] is errors[2]
