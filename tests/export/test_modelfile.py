"""The Ollama Modelfile: ChatML TEMPLATE only when the model's own template renders exactly ChatML."""

from __future__ import annotations

import pytest

from rlvr.export.modelfile import CHATML_TEMPLATE, PROBES, for_model, is_chatml, render_chatml
from rlvr.models import load_tokenizer
from rlvr.prompts import SYSTEM_PROMPT

# The shape of Qwen2.5-Instruct's template without its tool branches: a default system prompt, then ChatML.
QWEN_STYLE = (
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}{%- for message in messages %}{%- if message.role != 'system' or not loop.first %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
LLAMA3_STYLE = (
    "{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n{{ m.content }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
CHATML_WITHOUT_NEWLINES = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture()
def tokenizer(tiny_model):
    return load_tokenizer(str(tiny_model))  # the bundled SmolLM2 tokenizer and its chat template


def test_the_bundled_smollm2_template_is_chatml(tokenizer):
    for probe in PROBES:
        assert tokenizer.apply_chat_template(
            probe, tokenize=False, add_generation_prompt=True
        ) == render_chatml(probe)
    modelfile, warnings = for_model(tokenizer, "m-Q4_K_M.gguf", context_length=2048)
    text = modelfile.text()
    assert warnings == []
    assert text.startswith("FROM ./m-Q4_K_M.gguf\n")
    assert f'TEMPLATE """{CHATML_TEMPLATE}"""' in text
    assert f'SYSTEM """{SYSTEM_PROMPT}"""' in text  # the system prompt training and evaluation use
    assert 'PARAMETER stop "<|im_end|>"' in text and 'PARAMETER stop "<|im_start|>"' in text
    assert "PARAMETER num_ctx 2048" in text and "PARAMETER temperature 0.2" in text


def test_a_qwen_style_template_is_chatml(tokenizer):
    tokenizer.chat_template = QWEN_STYLE
    assert is_chatml(tokenizer)


@pytest.mark.parametrize("template", [LLAMA3_STYLE, CHATML_WITHOUT_NEWLINES])
def test_other_templates_get_no_template_and_a_warning(tokenizer, template):
    tokenizer.chat_template = template
    assert not is_chatml(tokenizer)
    modelfile, warnings = for_model(tokenizer, "m.gguf")
    assert "TEMPLATE" not in modelfile.text() and len(warnings) == 1
    assert "not ChatML" in warnings[0]
