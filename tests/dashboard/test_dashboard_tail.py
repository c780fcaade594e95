"""JsonlTail: incremental reads by byte offset and the file edge cases."""

from __future__ import annotations

import os
from pathlib import Path

from dashboard.tail import JsonlTail


def test_partial_last_line_is_left_for_the_next_poll(tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl"
    p.write_bytes(b'{"step": 1}\n{"step": 2, "lo')
    t = JsonlTail(str(p))
    res, recs = t.poll_records()
    assert recs == [{"step": 1}]
    assert res.end == len(b'{"step": 1}\n')
    with open(p, "ab") as fh:
        fh.write(b'ss": 0.5}\n')
    _, recs = t.poll_records()
    assert recs == [{"step": 2, "loss": 0.5}]
    assert t.corrupt == 0


def test_truncated_file_resets_to_offset_zero(tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl"
    p.write_text('{"step": 1}\n{"step": 2}\n')
    t = JsonlTail(str(p))
    t.poll_records()
    with open(p, "w") as fh:  # same inode, smaller
        fh.write('{"step": 9}\n')
    res, recs = t.poll_records()
    assert res.reset == "truncated"
    assert recs == [{"step": 9}]


def test_rotated_file_resets_on_new_inode(tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl"
    p.write_text('{"step": 1}\n')
    t = JsonlTail(str(p))
    t.poll_records()
    new = tmp_path / "m.jsonl.new"
    new.write_text('{"step": 100}\n{"step": 101}\n{"step": 102}\n')
    os.replace(new, p)
    res, recs = t.poll_records()
    assert res.reset == "rotated"
    assert [r["step"] for r in recs] == [100, 101, 102]


def test_corrupt_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl"
    p.write_text('{"step": 1}\nnot json at all\n[1, 2]\n{"step": 2}\n')
    t = JsonlTail(str(p))
    _, recs = t.poll_records()
    assert [r["step"] for r in recs] == [1, 2]
    assert t.corrupt == 2


def test_nan_and_infinity_parse_to_none(tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl"
    p.write_text('{"step": 1, "loss": NaN, "kl": Infinity, "g": null}\n')
    _, recs = JsonlTail(str(p)).poll_records()
    assert recs == [{"step": 1, "loss": None, "kl": None, "g": None}]


def test_missing_file_yields_nothing_then_picks_it_up(tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl"
    t = JsonlTail(str(p))
    res, recs = t.poll_records()
    assert (recs, res.end, res.reset) == ([], 0, None)
    p.write_text('{"step": 1}\n')
    _, recs = t.poll_records()
    assert recs == [{"step": 1}]


def test_resume_from_offset_reads_only_new_lines(tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl"
    first = b'{"step": 1}\n'
    p.write_bytes(first + b'{"step": 2}\n')
    ino = os.stat(p).st_ino
    _, recs = JsonlTail(str(p), offset=len(first), ino=ino).poll_records()
    assert recs == [{"step": 2}]


def test_offset_not_on_a_line_boundary_resets(tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl"
    p.write_text('{"step": 1}\n{"step": 2}\n')
    res, recs = JsonlTail(str(p), offset=5).poll_records()
    assert res.reset == "truncated"
    assert [r["step"] for r in recs] == [1, 2]


def test_max_bytes_reads_in_slices_without_losing_lines(tmp_path: Path) -> None:
    p = tmp_path / "m.jsonl"
    p.write_text("".join(f'{{"step": {i}}}\n' for i in range(100)))
    t = JsonlTail(str(p))
    steps: list[int] = []
    for _ in range(200):
        _, recs = t.poll_records(max_bytes=50)
        steps += [r["step"] for r in recs]
        if t.offset == p.stat().st_size:
            break
    assert steps == list(range(100))
