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


def _batch_lines(n: int) -> list[dict]:
    return [
        {
            "step": s,
            "reward_mean": s / 7,
            "error_classes": {"Unbound value": s % 3, "Syntax error": 1},
            "stage_counts": {"pass": s % 5, "type_error": 2},
            "reward_histogram": {"edges": [0, 1], "counts": [s]},
        }
        for s in range(1, n + 1)
    ]


def test_parse_process_gives_the_same_store_as_a_thread(tmp_path: Path, write_lines, monkeypatch) -> None:
    import dashboard.series as series_mod

    monkeypatch.setattr(series_mod, "SYNC_LOAD_BYTES", 0)
    monkeypatch.setattr(series_mod, "LOAD_CHUNK", 4096)  # the child gets it as an argument
    p = tmp_path / "batch_metrics.jsonl"
    write_lines(p, [*_batch_lines(400), "{corrupt\n"])
    child = BatchStore(str(p))
    assert child.payload()["sampled"] is True
    child._loader.join(30)
    write_lines(p, [{"step": 401, "reward_mean": 1.5, "error_classes": {"Syntax error": 4}}])
    thread = BatchStore(str(p))
    thread.refresh()
    out = child.payload()
    assert out["sampled"] is False and out["lines"] == 401 and out["corrupt"] == 1
    assert child.series() == thread.series()
    assert child.error_totals == thread.error_totals == {"Unbound value": 400, "Syntax error": 404}
    assert child.last_histogram == {"step": 400, "edges": [0, 1], "counts": [400]}
    assert child.child_offset > 0  # the parse process reported its progress


def test_a_dying_parse_process_falls_back_to_a_thread(tmp_path: Path, write_lines, monkeypatch) -> None:
    import os

    import dashboard.series as series_mod
    from dashboard.offload import Offloaded

    monkeypatch.setattr(series_mod, "SYNC_LOAD_BYTES", 0)
    monkeypatch.setattr(series_mod, "Offloaded", lambda *_a: Offloaded(os._exit, 3))
    p = tmp_path / "batch_metrics.jsonl"
    write_lines(p, _batch_lines(50))
    st = BatchStore(str(p))
    st.payload()
    st._loader.join(30)
    out = st.payload()
    assert out["sampled"] is False and out["lines"] == 50
    assert st.error_totals == {"Unbound value": 51, "Syntax error": 50}


def test_round_significant_gives_short_decimals() -> None:
    import json

    from dashboard.series import round_significant

    a = np.array([0.043016609478994244, 1236387.5, 0.0, np.nan, -1.234567e-8, 123456789.0, 1e-30, np.inf])
    r = round_significant(a)
    assert (
        json.dumps(r[[0, 1, 2, 4, 5, 6]].tolist())
        == "[0.0430166, 1236390.0, 0.0, -1.23457e-08, 123457000.0, 1e-30]"
    )
    assert np.isnan(r[3]) and r[7] == np.inf


def test_loaded_payload_is_cached_until_the_file_grows(tmp_path: Path, write_lines) -> None:
    p = tmp_path / "metrics.jsonl"
    write_lines(p, [{"step": s, "loss": s / 3} for s in range(1, 10)])
    st = SeriesStore(str(p))
    first = st.payload(["loss"])
    assert st.payload(["loss"])["series"] is first["series"]
    write_lines(p, [{"step": 10, "loss": 0.5}])
    again = st.payload(["loss"])
    assert again["series"] is not first["series"]
    assert again["series"]["loss"]["y"][-1] == 0.5 and again["lines"] == 10


def test_rounding_keeps_the_differences_of_large_values() -> None:
    from dashboard.series import round_significant

    t0 = 1_790_000_000.0  # a Unix time in 2026
    times = t0 + 40.0 * np.arange(1, 7) + 0.123  # six steps, 40 s apart
    r = round_significant(times)
    # the spread is 200 s, so the step is 0.001 s: every difference survives to the millisecond
    assert np.diff(r).tolist() == [40.0] * 5
    assert r[0] == 1_790_000_040.123
    counts = np.array([12_000_000.0, 12_003_077.0, 12_006_154.0])  # num_tokens, 3077 a step
    assert np.diff(round_significant(counts)).tolist() == [3077.0, 3077.0]
