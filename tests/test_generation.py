"""aot-cli report --generate: sampling from a model's own distribution, the sampled KL against the exact
KL of known distributions, rewards from a locally built reward model and from functions, the
self-comparison (exactly KL 0 and win rate 0.5), the prompts rendered as training renders them, and
every bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from axolotl_runs import ROOT, make_config, tiny_config
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification
from typer.testing import CliRunner

from axolotl_aot.tools import report as lib
from axolotl_aot.tools.generation import (
    Prompt,
    RewardFunction,
    RewardModel,
    SamplingSettings,
    completion_logps,
    kl_per_token,
    load_prompts,
    sample,
    win_rate,
)
from axolotl_aot_cli.app import app

runner = CliRunner()
TEST_PAIRS = ROOT / "axolotl_aot/data/parity_paired_test.jsonl"
EOS = 3


def constant_model(logits: list[float], folder: Path) -> LlamaForCausalLM:
    """A real Llama whose next-token distribution is softmax(logits) after every context: every
    token embeds to one vector, attention and MLP add nothing. Its saved generation_config asks for
    greedy-ish, penalised sampling, which the report must ignore (it samples the model as it is)."""
    config = LlamaConfig(
        vocab_size=len(logits),
        hidden_size=4,
        intermediate_size=4,
        num_hidden_layers=1,
        num_attention_heads=1,
        num_key_value_heads=1,
        eos_token_id=EOS,
        pad_token_id=0,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        model.model.embed_tokens.weight[:, 0] = 1.0
        model.model.norm.weight.fill_(1.0)
        model.model.layers[0].input_layernorm.weight.fill_(1.0)
        model.model.layers[0].post_attention_layernorm.weight.fill_(1.0)
        model.lm_head.weight[:, 0] = torch.tensor(logits) / 2  # the normed hidden state is 2 e_0
    model.generation_config.update(
        do_sample=True,
        top_k=1,
        temperature=0.2,
        repetition_penalty=5.0,
        suppress_tokens=[1],
        min_new_tokens=5,
    )
    model.save_pretrained(folder)
    return LlamaForCausalLM.from_pretrained(folder, dtype=torch.float64)


TOKENS = SimpleNamespace(eos_token_id=EOS, pad_token_id=0, decode=lambda ids, **_: " ".join(map(str, ids)))


def distribution(model: LlamaForCausalLM, temperature: float = 1.0) -> torch.Tensor:
    """The model's actual next-token log-probs (the same after every context)."""
    with torch.no_grad():
        return torch.log_softmax(model(torch.tensor([[1, 2]])).logits[0, -1] / temperature, dim=-1)


def exact_kl(p: torch.Tensor, q: torch.Tensor) -> float:
    return float((p.exp() * (p - q)).sum())


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[LlamaForCausalLM, LlamaForCausalLM]:
    folder = tmp_path_factory.mktemp("constant")
    return constant_model([2.0, 0.5, 0.0, 0.0], folder / "p"), constant_model(
        [0.0, 1.0, 0.5, 1.0], folder / "q"
    )


def estimate(policy, reference, temperature: float = 1.0, seed: int = 0, per_prompt: int = 1000):
    settings = SamplingSettings(
        per_prompt, max_new_tokens=20, temperature=temperature, seed=seed, batch_size=2
    )
    prompts = [[1], [2, 1, 2], [1]]  # of different lengths: left padding within a batch
    samples = sample(policy, TOKENS, prompts, settings)
    ratios = completion_logps(policy, samples, settings) - completion_logps(reference, samples, settings)
    return kl_per_token(ratios, samples.lengths, per_prompt), samples


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_sampled_kl_converges_to_the_exact_kl_of_the_sampling_distributions(pair, temperature):
    """Tokens are i.i.d. from p_T = softmax(logits / T) until the end token, so the summed log-ratio
    over all sampled tokens over their number converges to KL(p_T || q_T), within its standard
    error; the first tokens follow p_T, not the saved generation_config's top_k=1."""
    p, q = pair
    (kl, error), samples = estimate(p, q, temperature)
    log_p, log_q = distribution(p, temperature), distribution(q, temperature)
    exact = exact_kl(log_p, log_q)
    assert 0.005 < error < 0.05
    assert abs(kl - exact) < 4 * error
    first = np.bincount([t[0] for t in samples.tokens], minlength=4) / len(samples.tokens)
    assert first == pytest.approx(log_p.exp().numpy(), abs=0.03)
    assert {len(t) for t in samples.tokens} <= set(range(1, 21))
    ended = [t for t, done in zip(samples.tokens, samples.ended, strict=True) if done]
    assert ended and all(t[-1] == EOS and EOS not in t[:-1] for t in ended)
    assert all(EOS not in t for t, done in zip(samples.tokens, samples.ended, strict=True) if not done)


def test_sampled_kl_sees_the_direction_and_its_standard_error_is_calibrated(pair):
    """KL(q || p) sampled from q is the other divergence; over 20 independent seeds the estimates
    scatter as their standard errors say."""
    p, q = pair
    (kl, error), _ = estimate(q, p)
    assert abs(kl - exact_kl(distribution(q), distribution(p))) < 4 * error
    assert abs(exact_kl(distribution(q), distribution(p)) - exact_kl(distribution(p), distribution(q))) > 0.1
    runs = [estimate(p, q, seed=seed, per_prompt=40)[0] for seed in range(20)]
    spread = np.std([kl for kl, _ in runs], ddof=1)
    assert 0.6 < spread / np.mean([e for _, e in runs]) < 1.6


def test_each_sample_continues_its_own_prompt(tiny_model):
    """At a temperature near 0 sampling is greedy: every sample of a batched, left-padded call equals
    the greedy continuation of its prompt generated alone (sample i belongs to prompt i // K)."""
    model = LlamaForCausalLM.from_pretrained(tiny_model, dtype=torch.float64)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    texts = ("Is 12 even?", "Tell me whether 7 is odd or even.", "x", "Is 12 even? Say so.")
    prompts = [tokenizer(text)["input_ids"] for text in texts]
    samples = sample(
        model, tokenizer, prompts, SamplingSettings(2, max_new_tokens=6, temperature=1e-4, batch_size=3)
    )
    for index, tokens in enumerate(samples.tokens):
        alone = model.generate(
            torch.tensor([prompts[index // 2]]),
            do_sample=False,
            max_new_tokens=6,
            pad_token_id=tokenizer.pad_token_id,
        )[0, len(prompts[index // 2]) :].tolist()
        assert tokens == alone[: len(tokens)]
    assert len({tuple(t) for t in samples.tokens}) > 1  # the prompts lead to different continuations


def test_teacher_forced_log_probs_equal_one_row_at_a_time(tiny_model):
    """Left-padded prompts and right-padded completions in one batch, with position ids that skip the
    padding, give each sample the log-prob a forward of that row alone gives."""
    model = LlamaForCausalLM.from_pretrained(tiny_model, dtype=torch.float64)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    settings = SamplingSettings(2, max_new_tokens=7, temperature=1.5, batch_size=3)
    prompts = [
        tokenizer(text)["input_ids"] for text in ("Is 12 even?", "Tell me whether 7 is odd or even.", "x")
    ]
    samples = sample(model, tokenizer, prompts, settings)
    batched = completion_logps(model, samples, settings)
    for index, tokens in enumerate(samples.tokens):
        ids = torch.tensor([samples.prompt_ids[index // 2] + tokens])
        with torch.no_grad():
            logits = model(ids).logits[0, len(samples.prompt_ids[index // 2]) - 1 : -1] / 1.5
        alone = torch.log_softmax(logits, -1).gather(1, torch.tensor(tokens)[:, None]).sum()
        assert batched[index] == pytest.approx(float(alone), abs=1e-9)


def test_win_rate_counts_ties_half_over_independent_couples_of_one_prompt():
    """Couples of the same prompt only (pooled over prompts: 0.656), and not sample j with sample j,
    drawn with the same random numbers (all couples: 0.75): prompt 0 wins 1 of its 2 couples and
    loses 1, prompt 1 wins 1 and ties 1."""
    policy, reference = np.array([1.0, 0.0, 3.0, 2.0]), np.array([0.5, 0.0, 2.0, 1.0])
    assert win_rate(policy, reference, 2) == (1 + 0 + 1 + 0.5) / 4
    with pytest.raises(ValueError, match="at least 2 samples per prompt"):
        win_rate(policy, reference, 1)


# -- rewards --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reward_model(tiny_model, tmp_path_factory) -> Path:
    """A locally built one-output sequence classifier on the tiny tokenizer, with a chat template."""
    folder = tmp_path_factory.mktemp("reward") / "rm"
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokenizer.chat_template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}"
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, num_labels=1, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    LlamaForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def prompts_of(*texts: str) -> list[Prompt]:
    return [
        Prompt(t, [1], [{"role": "user", "content": t}], t, f"p.jsonl line {i + 1}")
        for i, t in enumerate(texts)
    ]


def test_reward_model_scores_the_conversation_through_its_chat_template(reward_model):
    """Batched (right-padded) rewards equal the classifier's output on each rendered conversation
    alone; without a chat template, prompt and completion are a text pair."""
    rewards = RewardModel(str(reward_model), "cpu", batch_size=3)
    prompts = prompts_of("Is 4 even?", "Tell me whether 7 is odd or even.", "1", "odd?")
    completions = ["4 is even.", "7 is odd, surely, and that is that.", "", "no"]
    scored = rewards(prompts, completions)
    model = LlamaForSequenceClassification.from_pretrained(reward_model).eval()
    tokenizer = AutoTokenizer.from_pretrained(reward_model)
    for value, prompt, completion in zip(scored, prompts, completions, strict=True):
        text = f"<user>{prompt.plain}\n<assistant>{completion}\n"
        with torch.no_grad():
            alone = model(**tokenizer(text, add_special_tokens=False, return_tensors="pt")).logits[0, 0]
        assert value == pytest.approx(float(alone), abs=1e-5)
    rewards.tokenizer.chat_template = None
    assert rewards.texts(prompts[0], "x") == {"text": "Is 4 even?", "text_pair": "x"}


def test_a_bfloat16_reward_models_score_head_runs_in_float32(reward_model):
    """On a GPU reward models load in bfloat16, whose rewards have three significant digits; the score
    head is then computed in float32 from the bfloat16 hidden states."""
    from axolotl_aot.tools.generation.rewards import _float32_head

    model = LlamaForSequenceClassification.from_pretrained(reward_model, dtype=torch.bfloat16).eval()
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        hidden = model.model(ids).last_hidden_state[:, -1]
        _float32_head(model)
        logits = model(ids).logits
    assert logits.dtype == torch.float32
    assert logits[0, 0] == (hidden.float() @ model.score.weight.float().T)[0, 0]


def test_a_causal_lm_or_a_two_label_classifier_is_not_a_reward_model(tiny_model, reward_model, tmp_path):
    with pytest.raises(
        ValueError, match=r"is not a sequence classifier \(its config names LlamaForCausalLM\)"
    ):
        RewardModel(str(tiny_model), "cpu")
    config = json.loads((reward_model / "config.json").read_text())
    two = tmp_path / "two"
    two.mkdir()
    (two / "config.json").write_text(json.dumps({**config, "id2label": {"0": "a", "1": "b"}}))
    with pytest.raises(ValueError, match="has 2 labels; a reward model has one output"):
        RewardModel(str(two), "cpu")


REWARDS = """
import math

def length(prompt, completion):
    return float(len(completion))

def fails(prompt, completion):
    if "7" in prompt:
        raise KeyError("no rule for 7")
    return 1.0

def nan(prompt, completion):
    return math.nan if "7" in prompt else 0.0

def text(prompt, completion):
    return "high"
"""


@pytest.fixture
def reward_file(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "my_rewards.py"
    path.write_text(REWARDS)
    monkeypatch.chdir(tmp_path)
    return path


def test_reward_function_by_module_or_file(reward_file):
    prompts = prompts_of("Is 4 even?", "Is 7 odd?")
    for spec in ("my_rewards:length", f"{reward_file}:length"):
        assert RewardFunction.load(spec)(prompts, ["abc", ""]).tolist() == [3.0, 0.0]


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("fails", r"raised KeyError: 'no rule for 7' on p.jsonl line 2 \('Is 7 odd\?'\)"),
        ("nan", r"returned nan for p.jsonl line 2 \('Is 7 odd\?'\); a reward must be finite"),
        ("text", r"returned 'high' \(str\) for p.jsonl line 1 .*a reward is a number"),
    ],
)
def test_a_reward_function_that_fails_names_the_prompt(reward_file, function, message):
    with pytest.raises(ValueError, match=message):
        RewardFunction.load(f"my_rewards:{function}")(prompts_of("Is 4 even?", "Is 7 odd?"), ["a", "b"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("my_rewards", "expected MODULE:FUNCTION"),
        ("no_such_module:f", "cannot import no_such_module"),
        ("my_rewards:missing", "my_rewards has no function missing"),
        ("missing.py:f", "no such file missing.py"),
    ],
)
def test_a_reward_function_that_cannot_be_found(reward_file, spec, message):
    with pytest.raises(ValueError, match=message):
        RewardFunction.load(spec)


# -- prompts --------------------------------------------------------------------------------------


def test_prompts_are_the_evaluation_rows_as_training_renders_them(tiny_model, tmp_path):
    """The default prompts are the evaluation rows' prompts as axolotl's dataset type formats them for
    training; a --prompts row with only a prompt renders the same, completions taken from the data."""
    config = make_config(tmp_path, "paired", tiny_model, max_steps=1)
    cfg = lib.load_report_config(config, TEST_PAIRS)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    prompts = load_prompts(cfg, tokenizer, limit=5)
    rows = [json.loads(line) for line in TEST_PAIRS.read_text().splitlines()[:5]]
    formatted = lib.load_eval_dataset(cfg, max_samples=None)  # axolotl shuffles the rows
    by_prompt = {row["prompt"]: row for row in formatted}
    assert [p.plain for p in prompts] == [row["prompt"] for row in rows]
    for prompt in prompts:
        training = next(text for text in by_prompt if prompt.plain in text)
        assert prompt.text == training and prompt.text.startswith("<|im_start|>user\n")
        assert prompt.ids == tokenizer(training)["input_ids"]
    own = tmp_path / "prompts.jsonl"
    own.write_text("".join(json.dumps({"prompt": row["prompt"]}) + "\n" for row in rows[:3]))
    assert [p.text for p in load_prompts(cfg, tokenizer, own)] == [p.text for p in prompts[:3]]


def test_chat_prompts_are_rendered_with_the_models_template(tiny_model, tmp_path):
    """Message-list rows of the chat dataset type, rendered with the model's chat template."""
    from axolotl_aot.integration import compat

    data = tmp_path / "chat.jsonl"
    turns = [{"role": "user", "content": "Is 4 even?"}]
    data.write_text(json.dumps({"prompt": turns, "completion": "4 is even.", "label": True}) + "\n")
    chat = {"path": str(data), "type": "axolotl_aot_chat.unpaired", "split": "train"}
    config = tiny_config(
        tmp_path, "unpaired", base_model=str(tiny_model), datasets=[chat], test_datasets=None
    )
    cfg = lib.load_report_config(config, None)
    tokenizer = compat.load_tokenizer(cfg)
    rows = tmp_path / "prompts.jsonl"
    rows.write_text(json.dumps({"prompt": [{"role": "user", "content": "Is 8 even?"}]}) + "\n")
    (prompt,) = load_prompts(cfg, tokenizer, rows)
    expected = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Is 8 even?"}], add_generation_prompt=True, tokenize=False
    )
    assert prompt.text == expected and prompt.plain == "Is 8 even?"
    assert prompt.messages == [{"role": "user", "content": "Is 8 even?"}]


# -- the command ----------------------------------------------------------------------------------


def report(*args: str):
    return runner.invoke(app, ["report", *map(str, args)])


def said(message: str, output: str) -> bool:
    """Whether ``output`` holds ``message``, whatever the terminal's line wrapping."""
    return "".join(message.split()) in "".join(output.split())


def test_self_comparison_is_exactly_kl_zero_and_win_rate_half(tiny_model, reward_model, tmp_path):
    """The base model reported as its own checkpoint: the same seeds draw the same completions, so
    every statistic of the comparison is exact; the rewards are the locally built reward model's."""
    config = make_config(tmp_path, "paired", tiny_model, max_steps=1)
    out = tmp_path / "rep"
    args = ["--generate", "--reward-model", reward_model, "--samples", 3, "--max-new-tokens", 8]
    result = report(tiny_model, "--config", config, "--max-samples", 6, "--out", out, "--json", *args)
    assert result.exit_code == 0, result.output
    run = json.loads(result.output)["runs"]["cfg"]
    generation = run["checkpoints"][0]["generation"]
    assert run["generation"]["kl_per_token"] == generation["kl_per_token"] == 0.0
    assert generation["win_rate"] == 0.5
    assert generation["violation_fraction"] == 0.0
    assert generation["reward_mean"] == generation["reference_reward_mean"]
    assert (generation["samples"], generation["prompts"], generation["samples_per_prompt"]) == (18, 6, 3)
    assert run["generation"]["reward"] == str(reward_model)
    assert run["checkpoints"][0]["samples_file"] == str(out / "samples/cfg_model_samples.jsonl")
    ours = [json.loads(line) for line in (out / "samples/cfg_model_samples.jsonl").open()]
    theirs = [json.loads(line) for line in (out / "samples/cfg_reference.jsonl").open()]
    assert [r["completion"] for r in ours] == [r["completion"] for r in theirs]
    assert {r["log_ratio"] for r in ours} == {0.0}
    rewards = RewardModel(str(reward_model), "cpu")
    prompts = load_prompts(
        lib.load_report_config(config, None), AutoTokenizer.from_pretrained(tiny_model), limit=6
    )
    owners = [prompts[i // 3] for i in range(18)]
    assert [r["reward"] for r in ours] == pytest.approx(
        rewards(owners, [r["completion"] for r in ours]).tolist()
    )
    assert math.isclose(generation["reward_mean"], np.mean([r["reward"] for r in ours]))
    assert (out / "cfg_model_generation.png").stat().st_size > 0
    assert (out / "generation_frontier.png").stat().st_size > 0


def test_a_non_finite_reward_names_its_prompt_and_exits_1(tiny_model, reward_file, tmp_path):
    config = make_config(tmp_path, "paired", tiny_model, max_steps=1)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "Is 4 even?"}\n{"prompt": "Is 7 odd?"}\n')
    args = ["--generate", "--reward-fn", "my_rewards:nan", "--prompts", prompts, "--max-new-tokens", 2]
    result = report(tiny_model, "--config", config, "--max-samples", 2, "--out", tmp_path / "rep", *args)
    assert result.exit_code == 1
    assert said(f"returned nan for {prompts} line 2 ('Is 7 odd?'); a reward must be finite", result.output)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the prompts file is empty: {path} has no rows"),
        ('{"id": 4}\n', "{path} line 1 has no prompt: give each row a prompt"),
        (
            '{"question": "Is 4 even?"}\n',
            "{path} line 1: the config's dataset type cannot render it (KeyError: 'prompt')",
        ),
        ('{"prompt": ""}\n', "{path} line 1 has no prompt"),
    ],
)
def test_a_prompt_file_without_prompts_fails_before_any_model_loads(
    tiny_model, reward_file, tmp_path, monkeypatch, content, message
):
    config = make_config(tmp_path, "paired", tiny_model, max_steps=1)
    path = tmp_path / "prompts.jsonl"
    path.write_text(content)
    args = ["--generate", "--reward-fn", "my_rewards:length", "--prompts", path, "--out", tmp_path / "rep"]
    loaded = []
    monkeypatch.setattr(lib, "load_models", lambda *args: loaded.append(args))
    result = report(tiny_model, "--config", config, *args)
    assert result.exit_code == 1
    assert said(message.format(path=path), result.output)
    assert not loaded


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--generate"], 2, "--generate needs one reward"),
        (["--generate", "--reward-fn", "a:b", "--reward-model", "m"], 2, "--generate needs one reward"),
        (["--reward-fn", "a:b"], 2, "--reward-fn only with --generate"),
        (["--samples", "3", "--seed", "1"], 2, "--samples, --seed only with --generate"),
        (["--generate", "--reward-fn", "a:b", "--samples", "1"], 2, "1 is not in the range x>=2"),
        (["--generate", "--reward-fn", "a:b", "--temperature", "0"], 2, "temperature must be above 0"),
        (["--generate", "--reward-fn", "no_such_module:f"], 1, "cannot import no_such_module"),
        (["--generate", "--reward-model", "{model}"], 1, "is not a sequence classifier"),
    ],
)
def test_bad_generation_options(tiny_model, tmp_path, args, code, message):
    config = make_config(tmp_path, "paired", tiny_model, max_steps=1)
    args = [a.format(model=tiny_model) for a in args]
    result = report(tiny_model, "--config", config, "--out", tmp_path / "rep", *args)
    assert result.exit_code == code, result.output
    assert said(message, result.output)


def test_prompts_alone_need_no_evaluation_set(tiny_model, reward_file, tmp_path):
    """--generate --prompts with a config that has no evaluation rows: the checkpoints are judged by
    their samples only, the held-out fields are null and no held-out plot is drawn."""
    config = make_config(tmp_path, "paired", tiny_model, max_steps=1, test_datasets=None)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "Is 4 even?"}\n{"prompt": "Is 7 odd?"}\n{"prompt": "Is 4 even?"}\n')
    args = ["--generate", "--reward-fn", "my_rewards:length", "--prompts", prompts, "--max-new-tokens", 4]
    result = report(tiny_model, "--config", config, "--out", tmp_path / "rep", "--json", *args)
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.output)["runs"]["cfg"]["checkpoints"]
    assert entry["rewards"] is None and entry["plot"] is None and entry["n_pos"] == 0
    assert (entry["generation"]["prompts"], entry["generation"]["samples"]) == (2, 8)  # distinct prompts
    assert sorted(p.name for p in (tmp_path / "rep").glob("*.png")) == [
        "cfg_model_generation.png",
        "generation_frontier.png",
    ]
    text = report(tiny_model, "--config", config, "--out", tmp_path / "rep2", *args).output
    assert "generations: 4 samples per prompt" in text and "violation fraction (rewards)" not in text


def test_a_qlora_base_is_quantized_as_axolotl_trains_it():
    """The report's base of a QLoRA run (loaded so on a GPU only) is axolotl's 4-bit configuration."""
    from axolotl_aot.integration.compat import dict_default
    from axolotl_aot.tools.report.load import quantization

    qlora = {"adapter": "qlora", "load_in_4bit": True, "torch_dtype": torch.float16}
    settings = quantization(dict_default({**qlora, "bnb_config_kwargs": {"bnb_4bit_quant_type": "fp4"}}))
    assert settings.load_in_4bit and settings.bnb_4bit_use_double_quant
    assert (settings.bnb_4bit_quant_type, settings.bnb_4bit_compute_dtype) == ("fp4", torch.float16)
    assert quantization(dict_default({"adapter": "lora", "load_in_8bit": True})).load_in_8bit
    assert quantization(dict_default({"adapter": "lora", "load_in_4bit": True})) is None  # as axolotl
    assert quantization(dict_default({"adapter": "lora"})) is None


class Recorder:
    """A ``Progress`` that keeps what ``run_report`` told it."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def checkpoint_started(self, run, checkpoint):
        self.events.append(("checkpoint", run, Path(checkpoint).name))

    def batch_done(self, done, total):
        self.events.append(("batch", done, total))

    def sampling_started(self, run, model, prompts):
        self.events.append(("sampling", run, model, prompts))

    def checkpoint_done(self, run, checkpoint):
        self.events.append(("done", run, Path(checkpoint).name))


def test_generation_reports_its_progress_per_batch_of_prompts(tiny_model, reward_file, tmp_path):
    """The reference, then the checkpoint: each sampled in batches of --batch-size prompts, each batch
    told with the prompts done so far (what aot-cli report's bar shows)."""
    config = make_config(tmp_path, "paired", tiny_model, max_steps=1, test_datasets=None)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"Is {n} even?"}) + "\n" for n in range(5)))
    request = lib.GenerationRequest(
        reward_fn="my_rewards:length", prompts=prompts, settings=SamplingSettings(2, 3, batch_size=2)
    )
    spec = lib.RunSpec("run", config, [str(tiny_model)])
    recorder = Recorder()
    lib.run_report([spec], tmp_path / "rep", progress=recorder, generation=request)
    batches = [("batch", 2, 5), ("batch", 4, 5), ("batch", 5, 5)]
    assert recorder.events == [
        ("checkpoint", "run", "model"),
        ("sampling", "run", "reference", 5),
        *batches,
        ("sampling", "run", "model", 5),
        *batches,
        ("done", "run", "model"),
    ]
