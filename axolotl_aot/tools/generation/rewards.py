"""The reward of a sampled completion: a sequence-classification reward model, or a Python function.

A reward model (``--reward-model``) reads the conversation as it was trained to: its own chat
template over the prompt's messages and the completion as the assistant's turn, or, for a model
without a template, prompt and completion as a text pair. A reward function (``--reward-fn
MODULE:FUNCTION``) is called as ``function(prompt, completion) -> float`` with the prompt's last
user turn. Every reward must be a finite number: the first that is not names its prompt.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import numbers
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from axolotl_aot.tools.generation.prompts import Prompt


class Reward(Protocol):
    """Rewards of completions, one a (prompt, completion) couple; ``name`` is what the report shows."""

    name: str

    def __call__(self, prompts: Sequence[Prompt], completions: Sequence[str]) -> np.ndarray: ...


def _shown(prompt: Prompt) -> str:
    text = " ".join(prompt.plain.split())
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _finite(value: Any, index: int, prompts: Sequence[Prompt], source: str) -> float:
    where = f"{prompts[index].where} ({_shown(prompts[index])})"
    if not isinstance(value, numbers.Real):
        raise ValueError(
            f"{source} returned {value!r} ({type(value).__name__}) for {where}; a reward is a number"
        )
    if not math.isfinite(float(value)):
        raise ValueError(f"{source} returned {float(value)} for {where}; a reward must be finite")
    return float(value)


class RewardFunction:
    """A Python function ``(prompt, completion) -> float``, ``name`` as the report shows it."""

    def __init__(self, function: Callable[[str, str], float], name: str) -> None:
        self.function, self.name = function, name

    @classmethod
    def load(cls, spec: str) -> RewardFunction:
        """``MODULE:FUNCTION`` (a module importable from the current folder, or ``path/to/file.py``)."""
        return cls(_import_function(spec), spec)

    def __call__(self, prompts: Sequence[Prompt], completions: Sequence[str]) -> np.ndarray:
        values = []
        for index, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
            try:
                value = self.function(prompt.plain, completion)
            except Exception as err:  # the user's code: any failure is reported with its prompt
                raise ValueError(
                    f"the reward function {self.name} raised {type(err).__name__}: {err} on "
                    f"{prompt.where} ({_shown(prompt)}) with the completion {completion[:60]!r}"
                ) from err
            values.append(_finite(value, index, prompts, f"the reward function {self.name}"))
        return np.array(values, dtype=np.float64)


def _import_function(spec: str) -> Callable[[str, str], float]:
    module_name, sep, attribute = spec.rpartition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"--reward-fn {spec!r}: expected MODULE:FUNCTION, e.g. my_rewards:score")
    try:
        if module_name.endswith(".py") or "/" in module_name:
            path = Path(module_name).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"no such file {path}")
            name = f"_aot_reward_{path.stem}"  # not to shadow a module of the same name (json.py)
            loader = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(loader)
            sys.modules[name] = module
            loader.loader.exec_module(module)
        else:
            if "" not in sys.path and str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))  # as `python -m` finds the current folder's modules
            module = importlib.import_module(module_name)
    except Exception as err:
        raise ValueError(
            f"--reward-fn {spec}: cannot import {module_name} ({type(err).__name__}: {err}); pass a module "
            "importable from the current folder, or path/to/file.py:FUNCTION"
        ) from err
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ValueError(f"--reward-fn {spec}: {module_name} has no function {attribute}")
    return function


class RewardModel:
    """A Hugging Face ``*ForSequenceClassification`` model with one output, the reward."""

    def __init__(self, name_or_path: str, device: str, batch_size: int = 8) -> None:
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        self.name, self.batch_size = name_or_path, batch_size
        try:
            config = AutoConfig.from_pretrained(name_or_path)
        except (OSError, ValueError) as err:
            raise ValueError(f"--reward-model {name_or_path}: cannot read its config ({err})") from None
        architectures = config.architectures or []
        if not any(a.endswith("ForSequenceClassification") for a in architectures):
            named = ", ".join(architectures) or "no architecture"
            raise ValueError(
                f"--reward-model {name_or_path} is not a sequence classifier (its config names {named}): "
                "a reward model is an AutoModelForSequenceClassification with one label, e.g. one trained "
                "by TRL's RewardTrainer; for another scorer use --reward-fn MODULE:FUNCTION"
            )
        if config.num_labels != 1:
            raise ValueError(
                f"--reward-model {name_or_path} has {config.num_labels} labels; a reward model has one "
                "output (num_labels: 1); wrap another classifier in a --reward-fn"
            )
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        self.model, info = AutoModelForSequenceClassification.from_pretrained(
            name_or_path, dtype=dtype, output_loading_info=True
        )
        if info["missing_keys"]:
            raise ValueError(
                f"--reward-model {name_or_path} lacks weights {', '.join(sorted(info['missing_keys'])[:3])}: "
                "they would be random; pass a trained reward model"
            )
        self.model.to(device).eval()
        _float32_head(self.model)
        self.tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        # A long conversation loses its start, not the completion's end (the token the score reads).
        self.tokenizer.truncation_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.tokenizer.padding_side = "right"

    def texts(self, prompt: Prompt, completion: str) -> dict[str, Any]:
        """The tokenizer's arguments for one conversation: its chat template, else a text pair."""
        if self.tokenizer.chat_template:
            conversation = [*prompt.messages, {"role": "assistant", "content": completion}]
            text = self.tokenizer.apply_chat_template(conversation, tokenize=False)
            return {"text": text, "add_special_tokens": False}
        return {"text": prompt.plain, "text_pair": completion}

    @torch.no_grad()
    def __call__(self, prompts: Sequence[Prompt], completions: Sequence[str]) -> np.ndarray:
        values: list[float] = []
        device = next(self.model.parameters()).device
        for start in range(0, len(prompts), self.batch_size):
            end = start + self.batch_size
            encoded = [
                self.texts(p, c) for p, c in zip(prompts[start:end], completions[start:end], strict=True)
            ]
            texts = [e["text"] for e in encoded]
            pairs = [e["text_pair"] for e in encoded] if "text_pair" in encoded[0] else None
            batch = self.tokenizer(
                texts,
                pairs,
                padding=True,
                truncation=True,
                return_tensors="pt",
                add_special_tokens=encoded[0].get("add_special_tokens", True),
            ).to(device)
            logits = self.model(**batch).logits[:, 0].float().cpu().tolist()
            for offset, value in enumerate(logits):
                values.append(_finite(value, start + offset, prompts, f"the reward model {self.name}"))
        return np.array(values, dtype=np.float64)


def _float32_head(model: torch.nn.Module) -> None:
    """The score head of a bfloat16 reward model computed in float32: bfloat16 rewards have about three
    significant digits, so distinct completions would tie."""
    head = getattr(model, "score", None) or getattr(model, "classifier", None)
    if isinstance(head, torch.nn.Linear) and head.weight.dtype != torch.float32:
        head.float()
        head.register_forward_pre_hook(lambda _, inputs: tuple(x.float() for x in inputs))


def load_reward(model: str | None, function: str | None, device: str, batch_size: int = 8) -> Reward:
    """The reward of ``--reward-model`` (when given) or else ``--reward-fn``."""
    return RewardModel(model, device, batch_size) if model is not None else RewardFunction.load(function)
