"""A real evaluation of a tiny random model through the transformers backend: files, counts, fields,
the HTML report (self-contained, model and data text escaped), and adapter directories."""

from __future__ import annotations

import json
import re

import pytest

from eval.outputs import load_run
from eval.report import render_report
from rlvr.verifier import STAGES

from .conftest import SCRIPT_PROMPT, eval_problems, run_eval


def test_results_have_one_row_per_sample_with_the_outcome_fields(local_run):
    rows = [json.loads(line) for line in (local_run / "results.jsonl").open()]
    ids = [p["id"] for p in eval_problems()]
    assert len(rows) == len(ids) * 2
    assert sorted((r["problem_id"], r["sample"]) for r in rows) == sorted((i, s) for i in ids for s in (0, 1))
    outcome_fields = {
        "id", "total_reward", "type_check", "compile", "tests", "tests_passed", "tests_total", "stage",
        "error", "is_degenerate", "degenerate_reasons", "style_penalty", "style_reasons", "duration_ms",
    }  # fmt: skip
    for r in rows:
        assert outcome_fields <= set(r)
        assert r["stage"] in STAGES and r["id"] == r["problem_id"]
        assert isinstance(r["completion"], str) and r["completion_tokens"] <= 12
        assert r["finish_reason"] in ("stop", "length") and r["gen_seconds"] >= 0
        assert r["tests_total"] > 0
        if r["problem_id"] == "html_in_prompt":
            assert r["tests_total"] == 3


def test_summary_records_settings_counts_and_metrics(local_run, tiny_model):
    s = json.loads((local_run / "summary.json").read_text())
    assert s["status"] == "complete" and s["error"] is None
    st = s["settings"]
    assert (st["n"], st["ks"], st["temperature"], st["max_tokens"], st["seed"]) == (2, [1, 2], 0.8, 12, 1)
    assert s["model"]["backend"] == "transformers" and s["model"]["path"] == str(tiny_model)
    assert s["counts"] == {
        "problems": 3, "valid_problems": 3, "invalid_problems": 0, "problems_done": 3,
        "samples": 6, "scored_samples": 6, "infra_errors": 0,
    }  # fmt: skip
    m = s["metrics"]
    assert set(s["pass_at_k"]) == {"pass@1", "pass@2"}
    assert 0.0 <= m["mean_reward"] <= 1.0 and m["problems"] == 3
    assert sum(m["stages"].values()) == 6
    assert [f["level"] for f in m["funnel"]] == [
        "parsed",
        "type_checked",
        "compiled",
        "some_tests",
        "all_tests",
    ]
    reached = [f["reached"] for f in m["funnel"]]
    assert reached == sorted(reached, reverse=True) and reached[-1] == m["stages"].get("pass", 0)
    assert set(m["by_difficulty"]) <= {"easy", "medium", "hard"}
    assert m["by_tag"]["arithmetic"]["problems"] == 1
    assert [p["id"] for p in m["per_problem"]] == [p["id"] for p in eval_problems()]
    assert s["timing"]["generate_s"] > 0 and s["timing"]["completion_tokens"] > 0


def test_report_is_self_contained_and_escapes_model_and_data_text(local_run):
    html = (local_run / "report.html").read_text()
    assert 'alert("pwned")' not in html and "<script>alert" not in html
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold-tag&lt;/b&gt;" in html and "<b>bold-tag</b>" not in html
    assert html.count("<script") == 1  # the page's own few lines of filtering
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # no external asset
    assert "@import" not in html and "url(" not in html
    for pid in ("html_in_prompt", *[p["id"] for p in eval_problems()[:2]]):
        assert pid in html
    assert "Funnel" in html and "pass@2" in html


def test_completions_with_markup_are_escaped_in_the_report(local_run):
    run = load_run(local_run)
    run.rows[0]["completion"] = "```ocaml\nlet x = 1\n```</pre></details><script>steal()</script>"
    run.rows[0]["error"] = "<img src=x onerror=alert(1)>"
    html = render_report(run)
    assert "<script>steal()" not in html and "&lt;script&gt;steal()&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert SCRIPT_PROMPT not in html


def test_an_adapter_directory_is_applied_on_its_base(tiny_model, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from eval.local_model import load_model

    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    peft_model = get_peft_model(
        base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    peft_model.save_pretrained(tmp_path / "adapter")
    cfg = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(tiny_model)

    merged = load_model(str(tmp_path / "adapter"))
    plain = load_model(str(tiny_model))
    assert merged.info["adapter"] == str(tmp_path / "adapter") and merged.info["base"] == str(tiny_model)
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert not torch.allclose(merged.model(ids).logits, plain.model(ids).logits)


def test_an_adapter_trained_on_an_adapter_is_loaded_with_the_whole_chain(tiny_model, tmp_path):
    """A GRPO adapter started from an SFT adapter names the SFT adapter as its base: evaluating it must
    apply both (a bug once loaded the base with the GRPO adapter only, and the SFT weights were lost)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from eval.local_model import load_model
    from rlvr.export.merge import load_merged

    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    sft = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model), lora)
    sft.save_pretrained(tmp_path / "sft")
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(tmp_path / "sft")  # as the trainer does
    torch.manual_seed(1)
    grpo = get_peft_model(load_merged(tmp_path / "sft", dtype="float32"), lora)
    grpo.peft_config["default"].base_model_name_or_path = str(tmp_path / "sft")  # as note_parent_adapter does
    grpo.save_pretrained(tmp_path / "grpo")

    loaded = load_model(str(tmp_path / "grpo"))
    assert loaded.info["adapter_chain"] == [str(tmp_path / "grpo"), str(tmp_path / "sft")]
    assert loaded.info["base"] == str(tiny_model)
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        expected = grpo.merge_and_unload()(ids).logits  # the SFT-merged base plus the GRPO adapter
        got = loaded.model(ids).logits
        grpo_on_bare_base = load_merged_onto(tiny_model, tmp_path / "grpo")(ids).logits
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, grpo_on_bare_base, atol=1e-3)  # the SFT weights are in


def load_merged_onto(base, adapter):
    """`adapter` merged onto `base`, ignoring the base its config names (what the bug did)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    return PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base), str(adapter)
    ).merge_and_unload()


def test_an_adapter_without_its_base_says_so(tmp_path):
    from eval.local_model import load_model
    from rlvr.models import ModelLoadError

    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    with pytest.raises(ModelLoadError, match="base_model_name_or_path"):
        load_model(str(tmp_path))


def test_bad_settings_stop_before_anything_is_written(tiny_model, problems_file, tmp_path):
    code, path = run_eval(
        ["--model", str(tiny_model), "--data", str(problems_file), "--output-dir", str(tmp_path / "o"),
         "--n", "2", "--temperature", "0"]
    )  # fmt: skip
    assert code == 2 and path is None
    code, path = run_eval(
        ["--model", str(tmp_path), "--data", str(problems_file), "--output-dir", str(tmp_path / "o")]
    )
    assert code == 2 and path is None  # a directory with no model in it
