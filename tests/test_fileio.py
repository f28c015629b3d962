import os
import stat
from pathlib import Path

import pytest

from sgdlab.fileio import atomic_write, write_text_atomic


def test_writes_and_replaces(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    write_text_atomic(path, "one")
    write_text_atomic(path, "two")
    assert path.read_text() == "two"
    assert os.listdir(path.parent) == ["out.txt"]


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("precious")
    with pytest.raises(RuntimeError):
        with atomic_write(path, "w") as handle:
            handle.write("half")
            raise RuntimeError("crash mid-write")
    assert path.read_text() == "precious"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_new_files_get_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "out.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o644


def test_a_json_object_is_read_back_and_anything_else_named(tmp_path):
    from sgdlab.errors import SgdlabError
    from sgdlab.fileio import read_json_object

    write_text_atomic(tmp_path / "good.json", '{"lr": 0.1}')
    assert read_json_object(tmp_path / "good.json", "run's settings") == {"lr": 0.1}
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "cut.json").write_text('{"lr": 0.')
    for name, message in (("missing.json", "not found"), ("list.json", "is not a run's settings written by sgdlab"),
                          ("cut.json", "cannot read .* as a run's settings .* it may be damaged")):
        with pytest.raises(SgdlabError, match=message):
            read_json_object(tmp_path / name, "run's settings")


@pytest.mark.parametrize("text, problem", [
    ('{"lr": 1e400}', "the number 1e400 is beyond the range of floats"),
    ('{"lr": -1e400}', "the number -1e400 is beyond the range of floats"),
    ('{"loss": [NaN]}', "NaN is not a number sgdlab writes"),
    ('{"loss": [Infinity, -Infinity]}', "Infinity is not a number sgdlab writes"),
    ('{"iters": 1' + "0" * 400 + "}", "the number 100000000000000000000... is beyond the range of floats"),
    ('{"iters": 1' + "0" * 5000 + "}", "Exceeds the limit"),
    ('{"loss": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
])
def test_json_that_sgdlab_never_writes_is_refused_naming_the_file(tmp_path, text, problem):
    from sgdlab.errors import SgdlabError
    from sgdlab.fileio import read_json_object

    (tmp_path / "history.json").write_text(text)
    with pytest.raises(SgdlabError, match=f"cannot read {tmp_path / 'history.json'} as a history file .*{problem}"):
        read_json_object(tmp_path / "history.json", "history file")


def test_a_json_file_of_gigabytes_is_refused_unread(tmp_path):
    from sgdlab.errors import SgdlabError
    from sgdlab.fileio import MAX_JSON_BYTES, read_json_object

    with open(tmp_path / "config.json", "wb") as handle:
        handle.truncate(4 << 30)  # sparse: nothing is written
    with pytest.raises(SgdlabError, match=f"config.json as a run's settings .*more than {MAX_JSON_BYTES >> 20} MB"):
        read_json_object(tmp_path / "config.json", "run's settings")


def test_a_json_file_that_grows_as_it_is_read_is_read_no_further_than_the_limit(tmp_path, monkeypatch):
    from sgdlab import fileio
    from sgdlab.errors import SgdlabError

    monkeypatch.setattr(fileio, "MAX_JSON_BYTES", 1000)
    (tmp_path / "history.json").write_bytes(b" " * 600)
    with open(tmp_path / "history.json", "ab") as growing:  # it grows after its size is checked: read to the bound
        real_open = fileio.open_regular_file

        def open_then_grow(*args):
            handle = real_open(*args)
            growing.write(b" " * 600)
            growing.flush()
            return handle

        monkeypatch.setattr(fileio, "open_regular_file", open_then_grow)
        with pytest.raises(SgdlabError, match="history.json as a history file .*more than 1000 bytes"):
            fileio.read_json_object(tmp_path / "history.json", "history file")


def test_a_history_of_a_million_iterations_is_read(tmp_path):
    import json

    from sgdlab.fileio import read_json_object

    loss = [2.302585092994046 - i * 1e-7 for i in range(1_000_000)]
    (tmp_path / "history.json").write_text(json.dumps({"loss": loss}, indent=1))
    assert read_json_object(tmp_path / "history.json", "history file")["loss"] == loss


def refused_lock():
    from sgdlab.errors import SgdlabError

    return SgdlabError("held by another")


def test_a_lock_is_held_against_another_holder_and_removed_after(tmp_path):
    from sgdlab.errors import SgdlabError
    from sgdlab.fileio import exclusive_lock

    with exclusive_lock(tmp_path / ".lock", refused_lock):
        with pytest.raises(SgdlabError, match="held by another"):
            with exclusive_lock(tmp_path / ".lock", refused_lock):
                pass
    assert not (tmp_path / ".lock").exists()


def test_a_lock_file_its_holder_removes_as_it_is_opened_is_opened_again(tmp_path, monkeypatch):
    """Another process's lock ending between this one's open and lock (its file removed, a third process's made
    in its place): the lock taken is the one the path names, so nobody else can take it meanwhile."""
    from sgdlab import fileio
    from sgdlab.errors import SgdlabError

    path = tmp_path / ".lock"
    real_open, replaced = os.open, []

    def open_as_the_holder_leaves(name, *args):
        descriptor = real_open(name, *args)
        if Path(name) == path and not replaced:
            replaced.append(path)
            os.unlink(path)  # the holder's end: its file removed...
            path.write_bytes(b"")  # ...and another process's lock file made there, not yet locked
        return descriptor

    monkeypatch.setattr(fileio.os, "open", open_as_the_holder_leaves)
    with fileio.exclusive_lock(path, refused_lock):
        monkeypatch.setattr(fileio.os, "open", real_open)
        with pytest.raises(SgdlabError, match="held by another"):
            with fileio.exclusive_lock(path, refused_lock):
                pass
    assert replaced and not path.exists()


@pytest.mark.parametrize("make, problem", [
    (lambda path: path.symlink_to(path.parent / "target"), "is a link, not a lock file sgdlab made"),
    (lambda path: path.symlink_to("/dev/null"), "is a link, not a lock file sgdlab made"),
    (lambda path: os.mkfifo(path), "is a FIFO .*, not a lock file sgdlab made"),
    (lambda path: path.mkdir(), "cannot open the lock file .*: Is a directory"),
])
def test_a_lock_file_that_is_no_file_is_refused_and_nothing_is_made_through_it(tmp_path, make, problem):
    from sgdlab.errors import SgdlabError
    from sgdlab.fileio import exclusive_lock

    make(tmp_path / ".lock")
    with pytest.raises(SgdlabError, match=problem):
        with exclusive_lock(tmp_path / ".lock", refused_lock):
            pass
    assert not (tmp_path / "target").exists()


@pytest.mark.parametrize("make, problem", [
    (lambda path: os.mkfifo(path), "a FIFO \\(named pipe\\), not a regular file"),
    (lambda path: path.symlink_to("/dev/zero"), "a device, not a regular file"),
    (lambda path: path.mkdir(), "a folder, not a regular file"),
])
def test_only_a_regular_file_is_opened_for_reading(tmp_path, make, problem):
    from sgdlab.errors import SgdlabError
    from sgdlab.fileio import read_regular_file

    make(tmp_path / "file")
    with pytest.raises(SgdlabError, match=f"{tmp_path / 'file'}: {problem}"):
        read_regular_file(tmp_path / "file", 100)
    (tmp_path / "plain").write_bytes(b"x" * 101)
    with pytest.raises(SgdlabError, match="101 bytes, more than 100 bytes, the most such a file can have"):
        read_regular_file(tmp_path / "plain", 100)
    assert read_regular_file(tmp_path / "plain", 101) == b"x" * 101


def test_a_lock_is_held_only_while_a_process_holds_it(tmp_path):
    from sgdlab.errors import SgdlabError
    from sgdlab.fileio import exclusive_lock, lock_held

    path = tmp_path / ".lock"
    assert not lock_held(path)  # none there
    with exclusive_lock(path, refused_lock):
        assert lock_held(path)
        with pytest.raises(SgdlabError, match="held by another"):  # asking did not take it
            with exclusive_lock(path, refused_lock):
                pass
    path.touch()  # what a holder killed before it could remove the file leaves
    assert not lock_held(path)
    with exclusive_lock(path, refused_lock):  # and asking left it free
        pass
    (tmp_path / ".other").symlink_to(path)
    assert not lock_held(tmp_path / ".other")


def test_a_lock_asked_while_another_process_only_looks_at_it_is_taken(tmp_path, monkeypatch):
    """`lock_held` holds a shared lock for an instant; a worker starting its trial in that instant takes its
    lock once the look is over, rather than being told that another process trains the folder."""
    import fcntl

    from sgdlab import fileio

    path = tmp_path / ".lock"
    path.touch()
    waited = []
    with open(path, "rb") as looking:
        fcntl.flock(looking, fcntl.LOCK_SH | fcntl.LOCK_NB)  # a look, as lock_held takes it...

        def look_over(seconds):  # ...over while the lock is waited for
            waited.append(seconds)
            fcntl.flock(looking, fcntl.LOCK_UN)

        monkeypatch.setattr(fileio.time, "sleep", look_over)
        with fileio.exclusive_lock(path, refused_lock):  # taken once the look was over
            assert fileio.lock_held(path)
    assert len(waited) == 1 and sum(waited) < fileio.LOCK_PATIENCE
