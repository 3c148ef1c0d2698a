"""The bundled data and the tiny model that the CPU configs, tests and demo rely on."""

from __future__ import annotations

import json
from collections import Counter

from transformers import AutoTokenizer

from axolotl_aot.tools.synthetic import DATA_DIR, bundled_splits, write_bundled


def test_committed_files_are_what_the_generator_writes(tmp_path):
    for path in write_bundled(tmp_path):
        assert path.read_text() == (DATA_DIR / path.name).read_text(), path.name


def test_splits_are_disjoint_correct_and_unpaired_counts_differ():
    splits = bundled_splits()
    assert len(splits["paired_train"]) == 400 and len(splits["paired_test"]) == 100
    train_answers = {r["chosen"] for r in splits["paired_train"]}
    assert not train_answers & {r["chosen"] for r in splits["paired_test"]}  # held-out numbers
    for row in splits["paired_train"] + splits["paired_test"]:
        n = int(row["chosen"].split()[0])
        assert row["chosen"] == f"{n} is {'even' if n % 2 == 0 else 'odd'}."
        assert row["rejected"] == f"{n} is {'odd' if n % 2 == 0 else 'even'}."
    labels = Counter(r["label"] for r in splits["unpaired_train"])
    assert labels[True] == 400 and 0 < labels[False] < 400


def test_tiny_tokenizer_splits_digits_and_knows_chatml(tiny_model):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    assert tokenizer.tokenize("347 is odd.")[:3] == ["3", "4", "7"]
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Is 4 even or odd?"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|im_start|>user\nIs 4 even or odd?<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer("<|im_start|>assistant\n4 is even.<|im_end|>")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids)[0] == "<|im_start|>" and ids[-1] == tokenizer.eos_token_id
    config = json.loads((tiny_model / "config.json").read_text())
    assert config["model_type"] == "llama" and config["vocab_size"] == len(tokenizer)
