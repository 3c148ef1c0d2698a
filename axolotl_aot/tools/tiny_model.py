"""Build the tiny local model the CPU configs, tests and demo train: nothing is downloaded.

A random-weight Llama (about 0.2M parameters; or a Mixture-of-Experts family, ``FAMILIES``)
with a byte-level BPE tokenizer trained on the bundled text, single digits as tokens (so "347"
is 3, 4, 7 and the last digit is one token), and a ChatML chat template matching axolotl's
``chatml.*`` dataset types.

``python -m axolotl_aot.tools.tiny_model OUT_DIR`` writes a folder usable as ``base_model:``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    MixtralConfig,
    MixtralForCausalLM,
    PreTrainedTokenizerFast,
    Qwen3MoeConfig,
    Qwen3MoeForCausalLM,
)

from axolotl_aot.tools.synthetic import DATA_DIR

SPECIAL_TOKENS = ["<pad>", "<s>", "<|im_start|>", "<|im_end|>"]
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _corpus() -> list[str]:
    """The bundled rows as ChatML turns: prompts as user turns, answers as assistant turns."""
    texts = []
    for path in sorted(DATA_DIR.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            for key, value in json.loads(line).items():
                if isinstance(value, str):
                    role = "user" if key == "prompt" else "assistant"
                    texts.append(f"<|im_start|>{role}\n{value}<|im_end|>\n")
    return texts


def build_tokenizer(vocab_size: int = 384) -> PreTrainedTokenizerFast:
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<s>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
        chat_template=CHATML_TEMPLATE,
        model_max_length=256,
    )


EXPERTS = {"num_experts_per_tok": 2}
# family -> (config class, model class, its Mixture-of-Experts settings): 4 experts, 2 per token.
FAMILIES: dict[str, tuple[type, type, dict[str, Any]]] = {
    "llama": (LlamaConfig, LlamaForCausalLM, {}),
    "mixtral": (MixtralConfig, MixtralForCausalLM, {**EXPERTS, "num_local_experts": 4}),
    "qwen3_moe": (
        Qwen3MoeConfig,
        Qwen3MoeForCausalLM,
        {**EXPERTS, "num_experts": 4, "moe_intermediate_size": 64},
    ),
}


@contextlib.contextmanager
def seeded(seed: int = 0) -> Iterator[None]:
    """Torch's CPU generator seeded for a model's initialisation, the caller's random state restored after.

    Initialisation runs on the CPU, so no CUDA generator is drawn from; the same seed gives the same
    weights in every run (tests compare losses of models built this way).
    """
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        yield


def build_tiny_model(
    out_dir: str | Path,
    *,
    seed: int = 0,
    hidden_size: int = 64,
    layers: int = 2,
    vocab_size: int | None = None,
    family: str = "llama",
    **config_changes: Any,
) -> Path:
    """Write a tokenizer and a randomly initialised causal LM of ``family`` to ``out_dir``.

    ``vocab_size`` above the tokenizer's (384) gives the model a real LLM's vocabulary (its LM head
    and logits) for memory measurements; the extra rows are never produced by the tokenizer.
    ``family`` is one of ``FAMILIES`` (a dense Llama, or a Mixture-of-Experts model with 4 experts,
    top-2); ``config_changes`` override its config (e.g. ``router_jitter_noise``).
    """
    out = Path(out_dir)
    tokenizer = build_tokenizer()
    config_cls, model_cls, moe = FAMILIES[family]
    config = config_cls(
        **moe,
        vocab_size=max(vocab_size or 0, len(tokenizer)),
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        **config_changes,
    )
    with seeded(seed):
        model = model_cls(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(build_tiny_model(args.out_dir, seed=args.seed))


if __name__ == "__main__":
    main()
