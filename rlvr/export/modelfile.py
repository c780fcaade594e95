"""An Ollama Modelfile for an exported GGUF: FROM, TEMPLATE, SYSTEM, stop tokens and sampling parameters.

Why a TEMPLATE at all: Ollama renders prompts with its own Go template, not the Jinja chat template
in the model. If the two disagree (a missing newline, another default system prompt) the served
model sees text it was never trained on. We write the ChatML template (SmolLM2, Qwen2/2.5, and every
`<|im_start|>` model) only after checking, by rendering probe conversations with the model's own
tokenizer, that ChatML is exactly what the model's template produces; the SYSTEM line is the system
prompt of rlvr.prompts, the one training and evaluation use. Other template families are not
guessed: the Modelfile then leaves TEMPLATE out and Ollama falls back to the template stored in the
GGUF metadata, and the caller is told so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..prompts import SYSTEM_PROMPT

# Ollama's ChatML layout (doc/serving.md). The SYSTEM prompt reaches it as the first message: Ollama
# prepends it to .Messages when the request has no system message of its own.
CHATML_TEMPLATE = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
    "{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n"
)
PROBES: tuple[list[dict[str, str]], ...] = (
    [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}],
    [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "U2"},
    ],
)
DEFAULT_PARAMETERS: dict[str, float | int] = {"temperature": 0.2, "top_p": 0.95, "num_predict": 512}


def render_chatml(messages: list[dict[str, str]]) -> str:
    """What CHATML_TEMPLATE renders for `messages`, with the generation prompt (used to check a model)."""
    body = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return body + "<|im_start|>assistant\n"


def is_chatml(tokenizer) -> bool:
    """True if the tokenizer's chat template renders every probe conversation exactly as ChatML."""
    if not getattr(tokenizer, "chat_template", None):
        return False
    try:
        return all(
            tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) == render_chatml(p)
            for p in PROBES
        )
    except Exception:  # a template that cannot render plain messages is not ChatML
        return False


@dataclass
class Modelfile:
    """The parts of a Modelfile; `text()` writes them in Ollama's syntax."""

    gguf_name: str  # file name beside the Modelfile (FROM ./name)
    template: str | None
    system: str | None
    stops: list[str] = field(default_factory=list)
    parameters: dict[str, float | int] = field(default_factory=dict)

    def text(self) -> str:
        lines = [f"FROM ./{self.gguf_name}", ""]
        if self.template is not None:
            lines += [f'TEMPLATE """{self.template}"""', ""]
        if self.system is not None:
            lines += [f'SYSTEM """{self.system}"""', ""]
        lines += [f'PARAMETER stop "{s}"' for s in self.stops]
        lines += [f"PARAMETER {k} {v}" for k, v in self.parameters.items()]
        return "\n".join(lines) + "\n"


def stop_tokens(tokenizer, chatml: bool) -> list[str]:
    """Strings that end a reply: the ChatML markers, and the tokenizer's end-of-sequence token."""
    stops = ["<|im_end|>", "<|im_start|>"] if chatml else []
    eos = getattr(tokenizer, "eos_token", None)
    if eos and eos not in stops:
        stops.append(eos)
    return stops


def for_model(tokenizer, gguf_name: str, context_length: int | None = None) -> tuple[Modelfile, list[str]]:
    """The Modelfile for a model with `tokenizer`, and warnings for the user (empty when all is known)."""
    warnings = []
    chatml = is_chatml(tokenizer)
    if not chatml:
        warnings.append(
            "the model's chat template is not ChatML: the Modelfile has no TEMPLATE, so Ollama uses the "
            "template stored in the GGUF metadata; check `ollama show --template` before relying on it"
        )
    params: dict[str, float | int] = dict(DEFAULT_PARAMETERS)
    if context_length:
        params["num_ctx"] = min(int(context_length), 8192)
    modelfile = Modelfile(
        gguf_name=gguf_name,
        template=CHATML_TEMPLATE if chatml else None,
        system=SYSTEM_PROMPT,
        stops=stop_tokens(tokenizer, chatml),
        parameters=params,
    )
    return modelfile, warnings
