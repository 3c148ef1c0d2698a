"""Does it align? Preference methods judged by the generations they produce, under a known reward.

    cd benchmarks && ../.venv/bin/python alignment.py [--quick] [--seed N] [--out DIR]

Per seed: a tiny local model is fine-tuned (plain torch) on the task of ``alignment_task``
until it writes the task's language with a wide spread of rewards; that model is the reference.
Its samples on training prompts become the preference data: paired (two samples of a prompt,
chosen = the higher reward) and unpaired (one sample per prompt, labelled by a reward
threshold, so positives and negatives come from different prompts and in unequal numbers).
Every method then trains from the reference through ``python -m axolotl.cli.train`` at the
same optimizer steps and the same completions seen per step (paired: 4 pairs x 8 accumulation;
unpaired: 8 rows x 8), every seed at every beta (the reward-KL frontier); ``rl: aot`` also
with a local sort next to its whole-step sort at the headline beta. Each final
model is judged on held-out prompts by its own samples through the product's generation report
(``axolotl_aot.tools.generation``, what ``aot-cli report --generate`` runs: the reference's and the
model's samples on the same seeds, several per prompt): mean reward, win rate over the reference's
samples, and sampled KL(policy || reference) per token with its standard error; and by
``aot-cli report``'s held-out dominance statistics of its implicit rewards
(``report.score``/``report.summarize``), to see whether dominance predicts generation quality.
Writes ``results.json``, ``summary.json`` and ``frontier.png`` to ``--out``; every run keeps
its ``row.json``, so a rerun resumes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import alignment_task as task
import torch
import yaml
from common import ROOT

from axolotl_aot.tools.generation import (
    GenerationJudge,
    Generations,
    Prompt,
    RewardFunction,
    SamplingSettings,
    sample,
)

SEQUENCE_LEN = 64
MICRO_BATCH = {"paired": 4, "unpaired": 8}  # equal completions per micro-batch: a pair is two
ACCUMULATION = 8
LEARNING_RATE = 3e-4
EVAL_PROMPTS = range(1000, 1064)  # training prompts use the numbers 0-999
PLUGIN = ["axolotl_aot.AOTPlugin"]
# method -> (its rl keys, the rows it trains on)
METHODS: dict[str, tuple[dict[str, Any], str]] = {
    "dpo": ({"rl": "dpo"}, "paired"),
    "trl_aot": ({"rl": "dpo", "dpo_loss_type": ["aot"]}, "paired"),
    "aot": ({"plugins": PLUGIN, "rl": "aot"}, "paired"),
    "kto": ({"rl": "kto", "remove_unused_columns": False}, "unpaired"),
    "aot_unpaired": ({"plugins": PLUGIN, "rl": "aot_unpaired", "remove_unused_columns": False}, "unpaired"),
}


@dataclass(frozen=True)
class Run:
    method: str
    beta: float
    scope: str | None  # aot methods: local or step

    @property
    def sort(self) -> int | None:
        """Samples in one sort: the micro-batch (TRL's AOT, local scope) or the whole step."""
        kind = METHODS[self.method][1]
        if self.method == "trl_aot" or self.scope == "local":
            return MICRO_BATCH[kind]
        return MICRO_BATCH[kind] * ACCUMULATION if self.scope == "step" else None

    @property
    def name(self) -> str:
        return f"{self.method}-{self.scope or 'micro'}-beta{self.beta}"


@dataclass(frozen=True)
class Plan:
    """What one invocation trains. Every seed: every method at every beta (the reward-KL
    frontier), and ``rl: aot`` at the ``headline`` beta with a local sort (the micro-batch) next
    to its whole-step sort."""

    seeds: tuple[int, ...]
    betas: tuple[float, ...]
    headline: float
    steps: int
    sft_steps: int
    eval_samples: int  # per held-out prompt

    def runs(self) -> list[Run]:
        scopes = {"aot": "step", "aot_unpaired": "step"}
        planned = [Run(method, beta, scopes.get(method)) for method in METHODS for beta in self.betas]
        return [*planned, Run("aot", self.headline, "local")]


FULL = Plan(
    seeds=(0, 1, 2),
    betas=(0.03, 0.3, 1.0),
    headline=0.3,
    steps=20,
    sft_steps=300,
    eval_samples=4,
)
QUICK = Plan(seeds=(0,), betas=(0.3,), headline=0.3, steps=8, sft_steps=150, eval_samples=2)


def chat_prompt(prompt: str) -> str:
    """The prompt as axolotl's ``chatml.prompt_pairs`` type renders it for training."""
    return f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"


def supervised_base(folder: Path, seed: int, steps: int) -> Path:
    """The reference: the tiny model trained on fluent completions of every mood (loss on the
    completion tokens only, tokenized as TRL tokenizes prompt and completion: separately)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from axolotl_aot.tools.tiny_model import build_tiny_model

    base = folder / "base"
    if (base / "model.safetensors").exists():
        return base
    initial = build_tiny_model(folder / "initial", seed=seed)  # base/ appears only once trained
    tokenizer = AutoTokenizer.from_pretrained(initial)
    model = AutoModelForCausalLM.from_pretrained(initial, dtype=torch.float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    for _ in range(steps):
        rows = [
            (
                tokenizer(chat_prompt(prompt))["input_ids"],
                tokenizer(task.supervised_completion(rng) + tokenizer.eos_token)["input_ids"],
            )
            for prompt in task.prompts([rng.randrange(1000) for _ in range(32)])
        ]
        width = max(len(a) + len(b) for a, b in rows)
        ids = torch.full((len(rows), width), tokenizer.pad_token_id)
        labels = torch.full((len(rows), width), -100)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for row, (prompt, completion) in enumerate(rows):
            end = len(prompt) + len(completion)
            ids[row, :end] = torch.tensor(prompt + completion)
            labels[row, len(prompt) : end] = torch.tensor(completion)
            mask[row, :end] = 1
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    return base


def prompts_of(texts: Sequence[str], tokenizer: Any) -> list[Prompt]:
    """The task's prompt texts as ``chatml.prompt_pairs`` renders them for training."""
    return [
        Prompt(
            chat_prompt(text),
            tokenizer(chat_prompt(text))["input_ids"],
            [{"role": "user", "content": text}],
            text,
            f"prompt {i}",
        )
        for i, text in enumerate(texts)
    ]


def sampling(per_prompt: int, seed: int) -> SamplingSettings:
    """Samples at temperature 1 from the model's full distribution (``tools.generation.sampling``)."""
    return SamplingSettings(samples=per_prompt, max_new_tokens=SEQUENCE_LEN - 16, seed=seed, batch_size=16)


def preference_data(folder: Path, base: Path, seed: int, steps: int) -> dict[str, Any]:
    """Paired and unpaired rows from the reference's own samples on training prompts (drawn once:
    a resumed run reads the files), and their counts.

    2P prompts get two samples each (P = half the pairs ``steps`` consume: two epochs). Paired: the
    first P prompts, chosen = the sample of higher reward (ties dropped). Unpaired: the first
    sample of all 2P prompts (as many completions as the paired rows), labelled positive above
    the 60th percentile of their rewards, so there are fewer positives than negatives.
    """
    files = {kind: folder / f"{kind}.jsonl" for kind in ("paired", "unpaired")}
    if not all(path.exists() for path in files.values()):
        write_preference_data(files, base, seed, steps)
    paired, unpaired = ([json.loads(line) for line in files[kind].open()] for kind in files)
    positives = sum(row["label"] for row in unpaired)
    return {
        "files": files,
        "pairs": len(paired),
        "positives": positives,
        "negatives": len(unpaired) - positives,
    }


def write_preference_data(files: dict[str, Path], base: Path, seed: int, steps: int) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    pairs = steps * MICRO_BATCH["paired"] * ACCUMULATION // 2
    numbers = random.Random(seed).sample(range(1000), k=1000)
    texts = task.prompts([numbers[i % 1000] for i in range(2 * pairs)])
    prompts = prompts_of(texts, tokenizer)
    completions = sample(model, tokenizer, [p.ids for p in prompts], sampling(2, seed)).texts
    rewards = [task.reward(prompts[i // 2].plain, c) for i, c in enumerate(completions)]
    paired = []
    for i in range(pairs):
        (a, ra), (b, rb) = zip(completions[2 * i : 2 * i + 2], rewards[2 * i : 2 * i + 2], strict=True)
        if ra != rb:
            chosen, rejected = (a, b) if ra > rb else (b, a)
            paired.append({"prompt": texts[i], "chosen": chosen, "rejected": rejected})
    firsts = rewards[::2]
    threshold = statistics.quantiles(firsts, n=10)[5]
    unpaired = [
        {"prompt": text, "completion": completion, "label": r > threshold}
        for text, completion, r in zip(texts, completions[::2], firsts, strict=True)
    ]
    for kind, rows in (("paired", paired), ("unpaired", unpaired)):
        files[kind].write_text("".join(json.dumps(row) + "\n" for row in rows))


def config(run: Run, base: Path, data: dict[str, Any], folder: Path, seed: int, steps: int) -> Path:
    """The axolotl YAML of ``run``: the example tiny configs' settings on this task's data."""
    keys, kind = METHODS[run.method]
    cfg: dict[str, Any] = {
        **keys,
        "base_model": str(base),
        "rl_beta": run.beta,
        "datasets": [{"path": str(data["files"][kind]), "ds_type": "json", "split": "train"}],
        "dataset_prepared_path": str(folder / "prepared"),
        "output_dir": str(folder / "out"),
        "sequence_len": SEQUENCE_LEN,
        "micro_batch_size": MICRO_BATCH[kind],
        "gradient_accumulation_steps": ACCUMULATION,
        "num_epochs": 2,
        "max_steps": steps,
        "learning_rate": LEARNING_RATE,
        "lr_scheduler": "constant",
        "optimizer": "adamw_torch",
        "weight_decay": 0.0,
        "seed": seed,
        "logging_steps": 1,
        "save_strategy": "no",
        "eval_strategy": "no",
        "save_safetensors": True,
        "bf16": False,
        "fp16": False,
        "tf32": False,
        "attn_implementation": "sdpa",
        "dataset_num_proc": 1,
    }
    cfg["datasets"][0]["type"] = "chatml.prompt_pairs"
    if run.scope is not None:
        cfg["aot_sort_scope"] = run.scope
    if run.method == "kto":  # TRL's advice: weight the labels so that their weighted counts match
        cfg["kto_desirable_weight"] = data["negatives"] / data["positives"]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def recorded(path: Path) -> dict[str, Any] | None:
    """The row a run of the config ``path`` already measured (``row.json``, written after its
    evaluation, names the config's hash), so that a rerun of an interrupted benchmark resumes."""
    saved = path.parent / "row.json"
    if not saved.exists():
        return None
    row = json.loads(saved.read_text())
    return row if row.get("config_sha256") == config_hash(path) else None


def config_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train(path: Path, threads: int) -> float | None:
    """``python -m axolotl.cli.train`` on ``path`` in a child process; its wall time in seconds
    (None: the run is already recorded)."""
    if recorded(path) is not None:
        return None
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    start = time.perf_counter()
    with (path.parent / "train.log").open("w") as log:
        done = subprocess.run(
            [sys.executable, "-m", "axolotl.cli.train", str(path)],
            cwd=path.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            timeout=1800,
        )
    if done.returncode != 0 or not (path.parent / "out/model.safetensors").exists():
        tail = (path.parent / "train.log").read_text()[-3000:]
        raise RuntimeError(f"training {path} failed (exit code {done.returncode}):\n{tail}")
    return time.perf_counter() - start


def heldout_pairs(texts: Sequence[str], reference: Generations) -> Any:
    """Held-out pairs for the dominance report: the best and worst reference sample of each prompt
    (ties dropped), formatted as training formats them."""
    from axolotl.prompt_strategies.dpo.chatml import prompt_pairs
    from datasets import Dataset

    transform = prompt_pairs(cfg=None)
    k, rows = reference.samples.per_prompt, []
    for index, text in enumerate(texts):
        group = sorted(
            zip(
                reference.rewards[index * k : (index + 1) * k],
                reference.samples.texts[index * k : (index + 1) * k],
                strict=True,
            )
        )
        if group[-1][0] > group[0][0]:
            rows.append(transform({"prompt": text, "chosen": group[-1][1], "rejected": group[0][1]}))
    return Dataset.from_list(rows)


def dominance(model: Any, reference: Any, tokenizer: Any, pairs: Any, beta: float) -> dict[str, float]:
    """``aot-cli report``'s statistics of the implicit rewards on the held-out pairs."""
    from axolotl.utils.dict import DictDefault

    from axolotl_aot.tools import report

    cfg = DictDefault(aot_mode="paired", rl_beta=beta, sequence_len=SEQUENCE_LEN)
    scores = report.score(model, reference, tokenizer, pairs, cfg, batch_size=32, device="cpu")
    summary = report.summarize(Path("."), scores, beta=beta)
    return {
        "heldout_violation": summary.rewards.violation_fraction,
        "heldout_win_rate": summary.rewards.win_rate,
        "heldout_pair_accuracy": summary.pair_accuracy,
    }


class Judge:
    """Scores final models of one seed against the reference on the held-out prompts, through the
    product's generation report (``tools.generation``): the same samples, rewards and KL."""

    def __init__(self, base: Path, seed: int, per_prompt: int) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(base)
        self.reference = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        texts = task.prompts(EVAL_PROMPTS)
        reward = RewardFunction(task.reward, "alignment_task.reward")
        self.judge = GenerationJudge(
            prompts_of(texts, tokenizer), reward, sampling(per_prompt, seed), tokenizer
        )
        self.baseline = self.judge.generate(self.reference)
        self.tokenizer, self.pairs = tokenizer, heldout_pairs(texts, self.baseline)

    def reference_row(self) -> dict[str, Any]:
        return {"reward": float(self.baseline.rewards.mean()), "kl": 0.0, "win_rate": 0.5}

    def __call__(self, checkpoint: Path, beta: float) -> dict[str, Any]:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
        stats, ours = self.judge.judge(model, self.reference, self.baseline)
        return {
            "reward": stats.reward_mean,
            "kl": stats.kl_per_token,
            "kl_standard_error": stats.kl_standard_error,
            "win_rate": stats.win_rate,
            "mean_tokens": stats.mean_tokens,
            "example": ours.samples.texts[0],
            **dominance(model, self.reference, self.tokenizer, self.pairs, beta),
        }


def run_seed(plan: Plan, seed: int, out: Path, jobs: int, collect: bool = False) -> list[dict[str, Any]]:
    """Every run of ``seed`` (``collect``: only those already measured) and the reference's row."""
    folder = out / f"seed-{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    base = supervised_base(folder, seed, plan.sft_steps)
    data = preference_data(folder, base, seed, plan.steps)
    print(
        f"seed {seed}: base and data in {time.perf_counter() - start:.0f} s: {data['pairs']} pairs, "
        f"{data['positives']} positive / {data['negatives']} negative rows",
        flush=True,
    )
    judge = Judge(base, seed, plan.eval_samples)
    rows = [{"method": "reference", "beta": None, "sort": None, "seed": seed, **judge.reference_row()}]
    planned = plan.runs()
    configs = [config(run, base, data, folder / run.name, seed, plan.steps) for run in planned]
    if collect:
        kept = [(run, path) for run, path in zip(planned, configs, strict=True) if recorded(path)]
        planned, configs = [run for run, _ in kept], [path for _, path in kept]
    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ThreadPoolExecutor(jobs) as pool:
        times = pool.map(train, configs, [threads] * len(configs))
        for run, path, seconds in zip(planned, configs, times, strict=True):
            row = recorded(path)
            if row is None:
                row = {"method": run.method, "beta": run.beta, "sort": run.sort, "seed": seed}
                row |= judge(path.parent / "out", run.beta) | {"scope": run.scope, "train_seconds": seconds}
                row |= {"steps": plan.steps, "completions_per_step": 2 * MICRO_BATCH["paired"] * ACCUMULATION}
                row["config_sha256"] = config_hash(path)
                (path.parent / "row.json").write_text(json.dumps(row, indent=2))
            rows.append(row)
            print(
                f"  {run.name}: reward {row['reward']:+.3f}, KL {row['kl']:.4f}/token, "
                f"win rate {row['win_rate']:.3f}, held-out violation {row['heldout_violation']:.3f} "
                f"({row['train_seconds']:.0f} s)",
                flush=True,
            )
    for row in rows:
        row["data"] = {key: value for key, value in data.items() if key != "files"}
    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample standard deviation over seeds of every (method, beta, sort), and the rank
    correlation of held-out dominance with generation reward over every trained model."""
    from scipy.stats import spearmanr

    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["method"], row["beta"], row["sort"]), []).append(row)
    table = []
    for (method, beta, sort), group in groups.items():
        entry: dict[str, Any] = {"method": method, "beta": beta, "sort": sort, "seeds": len(group)}
        for key in (
            "reward",
            "kl",
            "win_rate",
            "heldout_violation",
            "heldout_win_rate",
            "heldout_pair_accuracy",
        ):
            values = [row[key] for row in group if row.get(key) is not None]
            if values:
                entry[key] = statistics.mean(values)
                entry[f"{key}_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
        table.append(entry)
    trained = [row for row in rows if row["method"] != "reference"]
    correlation = {}
    for key in ("heldout_win_rate", "heldout_pair_accuracy"):
        for target in ("reward", "win_rate"):
            rho = spearmanr([row[key] for row in trained], [row[target] for row in trained]).statistic
            correlation[f"{key} vs {target}"] = float(rho)
    return {"table": table, "within_seed": within_seed(rows), "spearman": correlation}


def within_seed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each trained run minus a baseline run of the same seed and beta (the seeds differ in their
    reference and data, so these differences are sharper than the spreads): every method minus
    DPO, and ``rl: aot``'s whole-step sort minus TRL's AOT (the micro-batch sort, the same loss)."""
    runs = {(row["method"], row["beta"], row["sort"], row["seed"]): row for row in rows}
    local = MICRO_BATCH["paired"]
    groups = sorted({key[:3] for key in runs if key[0] not in ("reference", "dpo")}, key=str)
    pairs = [(group, ("dpo", group[1], None)) for group in groups]
    pairs += [(g, ("trl_aot", g[1], local)) for g in groups if g[0] == "aot" and g[2] != local]
    entries = []
    for group, baseline in pairs:
        seeds = sorted(key[3] for key in runs if key[:3] == group and (*baseline, key[3]) in runs)
        if not seeds:
            continue
        entry: dict[str, Any] = {"run": label(runs[(*group, seeds[0])]), "beta": group[1]}
        entry["against"] = label(runs[(*baseline, seeds[0])])
        for key in ("reward", "kl", "win_rate"):
            entry[key] = [runs[(*group, seed)][key] - runs[(*baseline, seed)][key] for seed in seeds]
        entries.append(entry)
    return entries


def label(entry: dict[str, Any]) -> str:
    return f"{entry['method']} (sort {entry['sort']})" if entry["sort"] else entry["method"]


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Reward against sampled KL per token, a panel per seed (its own reference and data), one
    line per method through its betas."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = sorted({row["seed"] for row in rows})
    fig, axes = plt.subplots(
        1, len(seeds), figsize=(4.5 * len(seeds), 4.5), sharex=True, sharey=True, squeeze=False
    )
    for axis, seed in zip(axes[0], seeds, strict=True):
        series: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            if row["seed"] == seed:
                series.setdefault(label(row), []).append(row)
        for name, entries in series.items():
            entries.sort(key=lambda e: e["beta"] or 0.0)
            reference = name == "reference"
            axis.plot(
                [e["kl"] for e in entries],
                [e["reward"] for e in entries],
                marker="*" if reference else "o",
                markersize=12 if reference else 4,
                label=name,
            )
            for e in entries:
                if e["beta"] is not None:
                    axis.annotate(
                        f"{e['beta']:g}", (e["kl"], e["reward"]), fontsize=6, alpha=0.6,
                        xytext=(3, 3), textcoords="offset points",
                    )  # fmt: skip
        axis.set(title=f"seed {seed}", xlabel="sampled KL(policy || reference) per token")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean ground-truth reward of samples (labels: beta)")
    axes[0][-1].legend(fontsize="small", loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(summary: dict[str, Any]) -> str:
    """The summary table as Markdown, mean ± sd over seeds."""

    def cell(entry: dict[str, Any], key: str, digits: int) -> str:
        if key not in entry:
            return "-"
        return f"{entry[key]:.{digits}f} ± {entry[key + '_sd']:.{digits}f}"

    lines = [
        "| method | beta | sort | seeds | reward | KL / token | win rate vs reference | held-out violation | "
        "held-out implicit win rate |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in summary["table"]:
        lines.append(
            f"| {e['method']} | {e['beta'] if e['beta'] is not None else '-'} | {e['sort'] or '-'} | "
            f"{e['seeds']} | {cell(e, 'reward', 3)} | {cell(e, 'kl', 4)} | {cell(e, 'win_rate', 3)} | "
            f"{cell(e, 'heldout_violation', 3)} | {cell(e, 'heldout_win_rate', 3)} |"
        )
    lines += [
        "",
        "Within-seed differences: mean ± sd over the seeds (the values per seed):",
        "",
        "| run | beta | minus | reward | KL / token | win rate vs reference |",
        "|---|---|---|---|---|---|",
    ]
    for e in summary["within_seed"]:
        cells = [spread(e[key], 3 if key != "kl" else 4) for key in ("reward", "kl", "win_rate")]
        lines.append(f"| {e['run']} | {e['beta']} | {e['against']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def spread(values: list[float], digits: int) -> str:
    """``mean ± sd (v1, v2, ...)`` of within-seed differences."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    each = ", ".join(f"{v:+.{digits}f}" for v in values)
    return f"{statistics.mean(values):+.{digits}f} ± {sd:.{digits}f} ({each})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, the headline beta, 8 steps (~4 min)")
    parser.add_argument("--seed", type=int, nargs="+", help="run these seeds only (default 0 1 2)")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs/alignment", help="results and runs")
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once")
    parser.add_argument(
        "--collect", action="store_true", help="train nothing: gather the runs measured so far"
    )
    options = parser.parse_args()
    plan = QUICK if options.quick else FULL
    if options.seed:
        plan = replace(plan, seeds=tuple(options.seed))
    out = options.out.resolve()  # the trainings run in their own folders
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = []
    for seed in plan.seeds:
        rows += run_seed(plan, seed, out, options.jobs, options.collect)
        (out / "results.json").write_text(json.dumps(rows, indent=2))
    summary = summarize(rows)
    summary["plan"] = {**asdict(plan), "minutes": (time.perf_counter() - start) / 60}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    plot(rows, out / "frontier.png")
    print(markdown(summary))
    print("spearman:", json.dumps(summary["spearman"], indent=1))
    print(f"{out}/results.json, summary.json, frontier.png in {summary['plan']['minutes']:.1f} min")


if __name__ == "__main__":
    main()
