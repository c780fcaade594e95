"""Series store and downsampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dashboard.series import BatchStore, SeriesStore, downsample


def test_short_series_is_returned_unchanged() -> None:
    out = downsample(np.array([1.0, 2.0, 3.0]), np.array([0.5, np.nan, 1.5]), 10)
    assert out == {"x": [1.0, 2.0, 3.0], "y": [0.5, None, 1.5], "n": 3}


def test_downsample_keeps_point_budget_and_exact_last_point() -> None:
    xs = np.arange(100_000, dtype=float)
    ys = np.sin(xs / 1000)
    out = downsample(xs, ys, 2000)
    assert len(out["x"]) == 2000
    assert out["x"][-1] == 99_999.0
    assert out["y"][-1] == ys[-1]


def test_downsample_band_keeps_a_spike() -> None:
    xs = np.arange(10_000, dtype=float)
    ys = np.zeros(10_000)
    ys[5_000] = 100.0
    out = downsample(xs, ys, 100)
    assert max(out["hi"]) == 100.0
    assert max(out["y"]) < 100.0  # the bucket mean dilutes it; the band shows it


def test_downsample_bucket_mean_ignores_nan() -> None:
    xs = np.arange(1000, dtype=float)
    ys = np.where(xs % 2 == 0, 1.0, np.nan)
    out = downsample(xs, ys, 50)
    assert all(v == 1.0 for v in out["y"][:-1])


def test_store_replaces_points_after_a_step_goes_back(tmp_path: Path, write_lines) -> None:
    p = tmp_path / "metrics.jsonl"
    write_lines(p, [{"step": s, "loss": float(s)} for s in (1, 2, 3, 4)])
    write_lines(p, [{"event": "resume", "step": 2, "time": 5.0}, {"step": 3, "loss": 30.0}])
    st = SeriesStore(str(p))
    st.refresh()
    s = st.series(["loss"])["loss"]
    assert (s["x"], s["y"]) == ([1.0, 2.0, 3.0], [1.0, 2.0, 30.0])
    assert st.events == [{"event": "resume", "step": 2.0, "time": 5.0}]


def test_store_keeps_null_as_gap(tmp_path: Path, write_lines) -> None:
    p = tmp_path / "metrics.jsonl"
    write_lines(p, [{"step": 1, "loss": 1.0}, {"step": 2, "loss": None}, {"step": 3, "loss": 3.0}])
    st = SeriesStore(str(p))
    st.refresh()
    assert st.series(["loss"])["loss"]["y"] == [1.0, None, 3.0]
    assert st.last["loss"] == 3.0


def test_batch_store_totals_error_classes_and_keeps_last_histogram(tmp_path: Path, write_lines) -> None:
    p = tmp_path / "batch_metrics.jsonl"
    write_lines(
        p,
        [
            {
                "step": 1,
                "error_classes": {"Unbound value": 2},
                "reward_histogram": {"edges": [0, 1], "counts": [4]},
            },
            {
                "step": 2,
                "error_classes": {"Unbound value": 3, "Syntax error": 1},
                "stage_counts": {"pass": 3},
            },
        ],
    )
    st = BatchStore(str(p))
    st.refresh()
    assert st.error_totals == {"Unbound value": 5, "Syntax error": 1}
    assert st.last_histogram == {"step": 1, "edges": [0, 1], "counts": [4]}
    assert st.series(["stage_counts/pass"])["stage_counts/pass"]["y"] == [3.0]


def test_big_file_first_view_is_a_sample_with_the_exact_last_line(tmp_path: Path, write_lines) -> None:
    p = tmp_path / "metrics.jsonl"
    write_lines(p, [{"step": s, "loss": float(s)} for s in range(1, 1001)])
    sample, end, _ino = SeriesStore(str(p))._sample(50)
    s = sample.series(["loss"])["loss"]
    assert 40 <= len(s["x"]) <= 51
    assert (s["x"][0], s["x"][-1], s["y"][-1]) == (1.0, 1000.0, 1000.0)
    assert end == p.stat().st_size


def test_big_file_payload_becomes_exact_after_background_load(
    tmp_path: Path, write_lines, monkeypatch
) -> None:
    import dashboard.series as series_mod

    monkeypatch.setattr(series_mod, "SYNC_LOAD_BYTES", 0)
    p = tmp_path / "metrics.jsonl"
    write_lines(p, [{"step": s, "loss": float(s)} for s in range(1, 3001)])
    st = SeriesStore(str(p))
    st.payload(["loss"], 100)
    st._loader.join(10)
    out = st.payload(["loss"], 100)
    assert out["sampled"] is False
    assert out["series"]["loss"]["n"] == 3000
    assert out["lines"] == 3000
