"""Runs never overwrite each other, and files appear whole or not at all."""

import json

import pytest

from gradlab.common.files import (atomic_write, atomic_write_set, check_writable, fresh_run_dir, interrupts_held,
                                  write_json)


def test_each_run_gets_a_fresh_directory(tmp_path):
    finals = []
    for _ in range(3):
        with fresh_run_dir(tmp_path, "lstm_len5") as run:
            (run.staging / "a.txt").write_text("x")
        finals.append(run.final)
    assert len(set(finals)) == 3 and all((f / "a.txt").read_text() == "x" for f in finals)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_failed_run_leaves_nothing_behind(tmp_path):
    with pytest.raises(RuntimeError):
        with fresh_run_dir(tmp_path, "broken") as run:
            (run.staging / "half.csv").write_text("t,")
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_refuses_to_overwrite_and_cleans_up(tmp_path):
    target = tmp_path / "fig.png"
    atomic_write(target, lambda p: p.write_text("one"))
    with pytest.raises(FileExistsError):
        atomic_write(target, lambda p: p.write_text("two"))
    atomic_write(target, lambda p: p.write_text("two"), overwrite=True)
    assert target.read_text() == "two"

    def failing(p):
        p.write_text("partial")
        raise OSError("no space")

    with pytest.raises(OSError):
        atomic_write(tmp_path / "other.png", failing)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png"]


def test_json_holds_no_nan_or_infinity(tmp_path):
    write_json(tmp_path / "s.json", {"a": float("inf"), "b": [float("nan"), 1.0]})
    assert json.loads((tmp_path / "s.json").read_text()) == {"a": "inf", "b": ["nan", 1.0]}


def test_check_writable_names_the_problem(tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        check_writable(f)
    with pytest.raises(OSError):
        check_writable(f / "sub")
    check_writable(tmp_path / "new" / "dir")


def test_a_file_set_is_written_whole_or_not_at_all(tmp_path):
    def fails(path):
        raise RuntimeError("disk full")
    writers = {tmp_path / "a.json": lambda p: p.write_text("{}"), tmp_path / "b.png": fails}
    with pytest.raises(RuntimeError):
        atomic_write_set(writers)
    assert list(tmp_path.iterdir()) == []
    ok = {tmp_path / "a.json": lambda p: p.write_text("{}"), tmp_path / "b.png": lambda p: p.write_bytes(b"x")}
    assert atomic_write_set(ok) == list(ok)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.png"]
    with pytest.raises(FileExistsError):
        atomic_write_set({tmp_path / "c.txt": lambda p: p.write_text("c"), tmp_path / "b.png": lambda p: None})
    assert not (tmp_path / "c.txt").exists()


@pytest.fixture
def sigint_default():
    """Python's own Ctrl-C handler for the test (a run started with nohup inherits SIGINT ignored)."""
    import signal

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_ctrl_c_is_held_back_until_the_renames_are_done(tmp_path, sigint_default):
    import os
    import signal

    with pytest.raises(KeyboardInterrupt):
        with interrupts_held():
            os.kill(os.getpid(), signal.SIGINT)
            (tmp_path / "done").write_text("the block ran to its end")
    assert (tmp_path / "done").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_process_that_ignores_ctrl_c_goes_on_ignoring_it(tmp_path):
    import os
    import signal

    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupts_held():
            os.kill(os.getpid(), signal.SIGINT)
            (tmp_path / "done").write_text("the block ran to its end")
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
    assert (tmp_path / "done").exists()
