"""TRL's conversational unpaired rows rendered with the model's own chat template.

A row is ``prompt`` (messages, or a string taken as one user turn, with an optional
``system`` column) and ``completion`` (the assistant turn(s) that follow, or a string taken
as one assistant turn). The prompt is rendered with ``add_generation_prompt=True``; the
completion is what rendering prompt + completion adds after it, so it carries the
template's end-of-turn markers exactly as the model will see them at inference, less the
whitespace after the last one (as axolotl's ``chat_template`` types do): TRL's KTO trainer
appends the EOS token to a text completion that does not end with it.

Axolotl resolves ``type: module.function`` only for a top-level module, so the dataset type
itself lives in the top-level module ``axolotl_aot_chat`` (``type: axolotl_aot_chat.unpaired``).
"""

from __future__ import annotations

from typing import Any

Message = dict[str, str]


def as_messages(value: Any, role: str) -> list[Message]:
    """``value`` as a message list: a string becomes one ``role`` turn; a list is kept."""
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, list) and all(isinstance(m, dict) and "role" in m for m in value):
        return [dict(m) for m in value]
    raise ValueError(f"expected a string or a list of {{role, content}} messages, got {type(value).__name__}")


def render_unpaired(
    tokenizer: Any,
    prompt: Any,
    completion: Any,
    *,
    system: str | None = None,
    chat_template: str | None = None,
) -> tuple[str, str]:
    """(prompt text ending with the generation prompt, completion text with its end-of-turn markers)."""
    turns = as_messages(prompt, "user")
    if system and not any(m["role"] == "system" for m in turns):
        turns = [{"role": "system", "content": system}, *turns]
    answer = as_messages(completion, "assistant")
    kwargs = {"tokenize": False, "chat_template": chat_template}
    head = tokenizer.apply_chat_template(turns, add_generation_prompt=True, **kwargs)
    whole = tokenizer.apply_chat_template(turns + answer, add_generation_prompt=False, **kwargs)
    if not whole.startswith(head):
        raise ValueError(
            "the chat template renders the prompt differently when an answer follows it, so the completion "
            "cannot be cut from the full conversation; set `chat_template:` to a template without this quirk"
        )
    return head, whole[len(head) :].rstrip()
