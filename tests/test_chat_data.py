"""Chat data, UltraFeedback-style rows to a trained unpaired model: rendering, validate, axolotl.cli.train."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from axolotl_runs import make_config, tiny_config, train
from datasets import load_from_disk
from transformers import AutoTokenizer
from typer.testing import CliRunner
from ultrafeedback import answers, prompt_turns, user_text, write_uf

from axolotl_aot.integration.chat import render_unpaired
from axolotl_aot_cli.app import app

runner = CliRunner()
START, END = "<|im_start|>", "<|im_end|>"  # the tiny model's ChatML template


def chatml(turns: list[dict[str, str]]) -> str:
    return "".join(f"{START}{m['role']}\n{m['content']}{END}\n" for m in turns)


@pytest.fixture
def tokenizer(tiny_model: Path):
    return AutoTokenizer.from_pretrained(tiny_model)


def test_rendering_uses_the_template_for_system_multi_turn_and_string_rows(tokenizer):
    turns = prompt_turns(0)  # system, an earlier exchange, the question
    assert [m["role"] for m in turns] == ["system", "user", "assistant", "user"]
    follow = [
        {"role": "assistant", "content": "A"},
        {"role": "user", "content": "B?"},
        {"role": "assistant", "content": "C"},
    ]
    prompt, completion = render_unpaired(tokenizer, turns, follow)
    assert prompt == chatml(turns) + f"{START}assistant\n"
    assert completion == f"A{END}\n{START}user\nB?{END}\n{START}assistant\nC{END}"
    prompt, completion = render_unpaired(tokenizer, "Q", "A", system="S")
    assert (prompt, completion) == (
        chatml([{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}])
        + f"{START}assistant\n",
        f"A{END}",
    )


def test_a_template_that_renders_the_prompt_differently_is_refused(tokenizer):
    quirky = (
        "{% for m in messages %}{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}>>{% endif %}"
    )
    with pytest.raises(ValueError, match="renders the prompt differently when an answer follows it"):
        render_unpaired(tokenizer, "Q", "A", chat_template=quirky)


def test_axolotl_argilla_chat_renders_paired_ultrafeedback_rows(tokenizer, tmp_path):
    """axolotl's own DPO type renders system + multi-turn paired chat rows with the template: no new type."""
    from axolotl.prompt_strategies.dpo import load

    row = json.loads(write_uf(tmp_path / "uf.jsonl", 1).read_text())
    transform, _ = load("chat_template.argilla_chat", {"datasets": [{"type": "chat_template.argilla_chat"}]})
    out = transform(row, tokenizer=tokenizer)
    assert out["prompt"] == chatml(prompt_turns(0)) + f"{START}assistant\n"
    assert (out["chosen"], out["rejected"]) == tuple(f"{a}{END}" for a in answers(0))


def validate(config: Path) -> tuple[int, list[dict]]:
    result = runner.invoke(app, ["validate", str(config), "--json"])
    return result.exit_code, json.loads(result.stdout)[0]["problems"]


def convert(src: Path, dst: Path, *args: str) -> str | None:
    """Run convert-dataset; the dataset type it suggests."""
    result = runner.invoke(app, ["convert-dataset", str(src), str(dst), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["dataset_type"]


@pytest.fixture
def chat_config(tmp_path: Path, tiny_model: Path) -> Callable[..., Path]:
    """A tiny rl: aot_unpaired config on converted UltraFeedback-style chat rows, of a given ``type``."""
    dataset_type = convert(write_uf(tmp_path / "uf.jsonl"), tmp_path / "unpaired.jsonl")
    assert dataset_type == "axolotl_aot_chat.unpaired"

    def config(type_: str | None) -> Path:
        dataset = {"path": str(tmp_path / "unpaired.jsonl"), "split": "train"} | (
            {"type": type_} if type_ else {}
        )
        return tiny_config(
            tmp_path,
            "unpaired",
            base_model=str(tiny_model),
            datasets=[dataset],
            test_datasets=None,
            val_set_size=0.1,
        )

    return config


@pytest.mark.parametrize(
    ("dataset_type", "message"),
    [
        (None, "prompt is a list, not text (training fails: text input must be a str)"),
        (
            "chatml.prompt_pairs",
            r"""prompt holds the Python text of a message list: "<|im_start|>user\n[{'role': 'system'""",
        ),
        ("chatml.ultra", "prompt holds the Python text of a message list"),
        ("chatml.argilla_chat", "does not contain the row's user text 'Is 100 even?'"),
    ],
)
def test_validate_flags_chat_rows_with_a_string_type(chat_config, dataset_type, message):
    code, found = validate(chat_config(dataset_type))
    assert code == 1
    (problem,) = found
    assert problem["key"] == "datasets[0].type" and problem["severity"] == "error"
    assert message in problem["message"]
    assert problem["message"].endswith("for message lists use type: axolotl_aot_chat.unpaired")


def test_validate_passes_the_suggested_chat_type(chat_config):
    assert validate(chat_config("axolotl_aot_chat.unpaired")) == (0, [])


@pytest.mark.parametrize(
    ("dataset_type", "code", "message"),
    [
        ("chat_template.argilla_chat", 0, None),
        ("chatml.prompt_pairs", 1, "chosen holds the Python text of a message list"),
        ("chat_template.default", 1, "the prompt contains the chosen answer 'Yes, 100 is even.'"),
    ],
)
def test_validate_paired_chat_rows(tmp_path, tiny_model, dataset_type, code, message):
    dataset = {"path": str(write_uf(tmp_path / "uf.jsonl")), "split": "train", "type": dataset_type}
    found = validate(
        tiny_config(
            tmp_path, base_model=str(tiny_model), datasets=[dataset], test_datasets=None, val_set_size=0.1
        )
    )
    assert found[0] == code
    assert (message is None and found[1] == []) or message in found[1][0]["message"]


def prepared_rows(prepared: Path) -> list[dict]:
    (folder,) = {path.parent for path in prepared.rglob("state.json")}
    return list(load_from_disk(str(folder)))


@pytest.mark.training
def test_ultrafeedback_to_a_trained_unpaired_model(tmp_path, tiny_model):
    """UltraFeedback-style chat rows and plain-string rows, converted, each with the type convert-dataset
    suggests, trained by axolotl.cli.train; every prepared row renders its user text and answer."""
    n = 8
    chat_type = convert(write_uf(tmp_path / "uf.jsonl", n), tmp_path / "chat.jsonl")
    strings = tmp_path / "strings.jsonl"
    strings.write_text(
        "".join(
            json.dumps({"system": "Plain.", "question": f"Plain {user_text(i)}", "chosen": c, "rejected": r})
            + "\n"
            for i in range(n)
            for c, r in [answers(i)]
        )
    )
    string_type = convert(strings, tmp_path / "strings_unpaired.jsonl")
    assert (chat_type, string_type) == ("axolotl_aot_chat.unpaired", "chatml.prompt_pairs")
    datasets = [
        {"path": str(tmp_path / "chat.jsonl"), "type": chat_type, "split": "train"},
        {"path": str(tmp_path / "strings_unpaired.jsonl"), "type": string_type, "split": "train"},
    ]
    config = make_config(
        tmp_path,
        "unpaired",
        tiny_model,
        max_steps=2,
        micro_batch_size=4,
        sequence_len=256,
        datasets=datasets,
        test_datasets=None,
    )
    assert validate(config)[0] == 0
    done = train(config)
    assert done.returncode == 0, done.stderr[-4000:]
    rows = prepared_rows(tmp_path / "prep")
    assert len(rows) == 4 * n  # two datasets, two rows per pair: nothing dropped
    for i in range(n):
        chosen, rejected = answers(i)
        for answer, label in ((chosen, True), (rejected, False)):
            # Both rows of a pair share the prompt: pick by label.
            (chat,) = [
                r
                for r in rows
                if r["label"] is label and r["prompt"] == chatml(prompt_turns(i)) + f"{START}assistant\n"
            ]
            assert chat["completion"] == f"{answer}{END}"  # ends with EOS: TRL appends none
            (plain,) = [r for r in rows if r["label"] is label and f"Plain {user_text(i)}" in r["prompt"]]
            assert (
                plain["prompt"]
                == chatml(
                    [
                        {"role": "system", "content": "Plain."},
                        {"role": "user", "content": f"Plain {user_text(i)}"},
                    ]
                )
                + f"{START}assistant\n"
            )
            assert plain["completion"] == f"{answer}{END}"


def test_the_readme_samples_are_what_the_helper_writes(tmp_path):
    docs = Path(__file__).resolve().parent.parent / "docs"
    for name, n, start in (("ultrafeedback_train.jsonl", 96, 0), ("ultrafeedback_test.jsonl", 24, 900)):
        assert write_uf(tmp_path / name, n, start).read_text() == (docs / name).read_text(), name
