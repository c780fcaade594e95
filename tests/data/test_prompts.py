import pytest

from rlvr.data import load_problems
from rlvr.models import load_tokenizer, resolve_model
from rlvr.prompts import SYSTEM_PROMPT, build_messages, pick_few_shot, reference_answer, render


@pytest.fixture(scope="module")
def problems():
    return load_problems("bundled")[0]


def test_messages_hold_system_prompt_doc_comment_and_signature(problems):
    p = problems[0]
    messages = build_messages(p)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == SYSTEM_PROMPT
    assert messages[1]["content"].endswith(f"{p.prompt.rstrip()}\n```")
    assert "```ocaml" in SYSTEM_PROMPT


def test_few_shot_comes_from_train_only(problems):
    train = [p for p in problems if p.split == "train"]
    target = next(p for p in problems if p.split == "eval")
    shots = pick_few_shot(train, 2)
    messages = build_messages(target, shots)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[2]["content"] == reference_answer(shots[0])
    with pytest.raises(ValueError, match="train split"):
        build_messages(shots[0], [target])


def test_reference_answer_is_one_fenced_full_definition(problems):
    p = problems[0]
    answer = reference_answer(p)
    assert answer.startswith("```ocaml\n") and answer.endswith("\n```")
    assert f"let {p.signature.name}" in answer or f"let rec {p.signature.name}" in answer


def test_render_uses_the_models_chat_template(problems):
    tok = load_tokenizer(resolve_model("bundled"))
    text = render(tok, build_messages(problems[0]))
    assert text.startswith("<|im_start|>system\n" + SYSTEM_PROMPT)
    assert text.endswith("<|im_start|>assistant\n")
