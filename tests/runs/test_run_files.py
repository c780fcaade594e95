"""Run files under faults: a full disk never leaves a torn line, a torn checkpoint is never resumed from."""

from __future__ import annotations

import errno
import json

import pytest

from rlvr.runlog import JsonlFile, checkpoint_problem, latest_checkpoint
from rlvr.training import disk_full


def test_a_full_disk_takes_back_the_partial_line_and_names_the_file(tmpfs):
    path = tmpfs("64k") / "metrics.jsonl"
    f = JsonlFile(path)
    record = {"step": 1, "text": "x" * 1000}
    with pytest.raises(OSError) as info:
        for _ in range(1000):
            f.write(record, record, record)
    f.close()
    assert info.value.errno == errno.ENOSPC
    assert str(path) in str(info.value) and "while appending 3 line(s)" in str(info.value)
    data = path.read_bytes()
    assert data and data.endswith(b"\n")
    assert all(json.loads(line) == record for line in data.splitlines())
    assert disk_full(info.value)


def test_disk_full_is_seen_through_a_wrapping_error():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("saving the checkpoint failed") from inner
    except RuntimeError as outer:
        assert disk_full(outer)
    assert disk_full(RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file data/0: file write failed, No space left on device"))  # fmt: skip
    assert not disk_full(RuntimeError("CUDA out of memory"))


def make_checkpoint(root, step: int, state: str | None) -> None:
    d = root / f"checkpoint-{step}"
    d.mkdir(parents=True)
    (d / "adapter_model.safetensors").write_bytes(b"weights")
    if state is not None:
        (d / "trainer_state.json").write_text(state)


def test_torn_checkpoints_are_skipped_with_a_reason(tmp_path, capsys):
    make_checkpoint(tmp_path, 2, json.dumps({"global_step": 2}))
    make_checkpoint(tmp_path, 3, json.dumps({"global_step": 3}))
    make_checkpoint(tmp_path, 4, '{"global_step": 4, "log_hist')  # cut mid-write
    make_checkpoint(tmp_path, 5, None)  # killed before the state was written
    assert latest_checkpoint(tmp_path, report=True) == tmp_path / "checkpoint-3"
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"skipping {tmp_path / 'checkpoint-5'}: no trainer_state.json (the save was cut)",
        f"skipping {tmp_path / 'checkpoint-4'}: trainer_state.json is cut or unreadable",
    ]
    assert checkpoint_problem(tmp_path / "checkpoint-2") is None


def test_a_state_from_another_step_is_not_trusted(tmp_path):
    make_checkpoint(tmp_path, 7, json.dumps({"global_step": 6}))
    assert checkpoint_problem(tmp_path / "checkpoint-7") == "trainer_state.json is for step 6"
    assert latest_checkpoint(tmp_path) is None
