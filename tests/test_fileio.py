import os
import stat

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
