"""FSDP2 and DeepSpeed ZeRO-2/3 on two CPU ranks through ``torchrun -m axolotl.cli.train``.

accelerate and axolotl pick these engines only with an accelerator; ``tests/harness`` (never
shipped) lets them start on CPU ranks over gloo. Each run first asserts, from what the harness's
``engine_probe`` recorded on every rank, that the engine really sharded the model; then that the
trainers kept the chunked log-probs (no full-logits fallback) and that two ranks land on the weights
of one process with the union batch. Paired runs also evaluate the whole test set under the engine,
``aot-cli report`` scores each sharded output as it scores the one-process output, and on the fast
stack an FSDP2 run (SHARDED_STATE_DICT) and a ZeRO-3 run are resumed from step 2.

The cases cover every pair of (engine, sort scope, mode, full/LoRA) values (a covering array:
5 runs instead of 16) plus ZeRO-2, split over the two stacks (``CASES``): FSDP2 and ZeRO-3 run on
both, ZeRO-2 on the newest, and every case on one at least. Both one-process references sort the
same samples as the two ranks: paired rows are split into consecutive micro-batches, unpaired rows
come from the label-mixing sampler in chunks of ``micro_batch_size``, so the reference accumulates
that many.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from axolotl_runs import (
    FAST_STACK,
    LORA,
    ROOT,
    final_weights,
    log_history,
    make_config,
    max_difference,
    small_dataset,
    train,
    weight_change,
    with_dataset,
)

sys.path.insert(0, str(ROOT / "tests/harness"))
from cpu_engines import ENGINES, PROBE, engine_records, environment, fsdp2

pytestmark = pytest.mark.training

STEPS = 3
SGD = {"optimizer": "sgd", "max_grad_norm": 0.0, "learning_rate": 0.5, "lr_scheduler": "constant"}
TOLERANCE = 1e-6  # max |two ranks - one process| over all weights
FALLBACK = "AOT log-probs use the full [tokens, vocab] logits"
TEST_PAIRS = ROOT / "axolotl_aot/data/parity_paired_test.jsonl"


@dataclass(frozen=True)
class Case:
    engine: str  # fsdp2, zero2, zero3
    scope: str  # world: 2 ranks x micro-batch 4; step: 2 ranks x 2 micro-batches
    mode: str  # paired, unpaired
    lora: bool

    @property
    def id(self) -> str:
        return f"{self.engine}-{self.scope}-{self.mode}-{'lora' if self.lora else 'full'}"

    def rank_changes(self) -> dict:
        """Per-rank batches: 8 (paired) or 8/16 (unpaired, chunks of 4) samples per step over 2 ranks."""
        if self.scope == "world":
            return {"aot_sort_scope": "world", "micro_batch_size": 4}
        if self.mode == "paired":
            return {"aot_sort_scope": "step", "micro_batch_size": 2, "gradient_accumulation_steps": 2}
        return {"aot_sort_scope": "step", "micro_batch_size": 4, "gradient_accumulation_steps": 2}

    def reference(self) -> tuple[str, bool, int]:
        """(mode, LoRA, accumulated micro-batches of 4) of the one-process run sorting the same samples."""
        if self.mode == "paired":
            return "paired", self.lora, 0  # micro-batch 8
        return "unpaired", self.lora, 2 if self.scope == "world" else 4


PAIRWISE = [
    Case("fsdp2", "world", "paired", False),
    Case("fsdp2", "step", "unpaired", True),
    Case("zero3", "world", "unpaired", True),
    Case("zero3", "step", "paired", True),
    Case("zero3", "step", "unpaired", False),
    Case("zero2", "world", "paired", False),
]
# Every case runs on one stack at least, every engine on both: the newest stack takes two of the pairwise
# cases (ZeRO-2, and ZeRO-3 with the world scope) besides the two it shares, which balances the stacks' time.
SHARED = [PAIRWISE[0], PAIRWISE[3]]  # FSDP2 world paired full, ZeRO-3 step paired LoRA
LATEST_ONLY = [PAIRWISE[5], PAIRWISE[2]]  # ZeRO-2 world paired full, ZeRO-3 world unpaired LoRA
CASES = [case for case in PAIRWISE if case not in LATEST_ONLY] if FAST_STACK else SHARED + LATEST_ONLY
RESUMED = [PAIRWISE[0], PAIRWISE[4]]  # on the fast stack: FSDP2 full, ZeRO-3 full
SHARDED_CHECKPOINTS = fsdp2(state_dict_type="SHARDED_STATE_DICT")


def config(folder: Path, model: Path, mode: str, lora: bool, **changes) -> Path:
    """The tiny config on 48 training rows; paired runs also evaluate on the bundled test pairs at the end."""
    folder.mkdir(parents=True)
    adapter = LORA if lora else {}
    evaluation = (
        {"eval_steps": STEPS, "eval_strategy": "steps", "eval_batch_size": 8} if mode == "paired" else {}
    )
    cfg = make_config(folder, mode, model, max_steps=STEPS, **SGD, **adapter, **evaluation, **changes)
    path = with_dataset(cfg, small_dataset(folder, mode, 48))
    if evaluation:
        data = yaml.safe_load(path.read_text())
        test = {"path": str(TEST_PAIRS), "ds_type": "json", "split": "train", "type": "chatml.prompt_pairs"}
        path.write_text(yaml.safe_dump({**data, "test_datasets": [test]}))
    return path


def train_ok(cfg: Path, processes: int = 1) -> Path:
    """Two ranks under the harness; one process (a reference: no engine to start) as any launch."""
    done = train(cfg, "torchrun", processes, env=environment()) if processes > 1 else train(cfg)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    assert FALLBACK not in done.stdout + done.stderr  # the chunked log-probs under every engine
    # The ranks pack their batches (the harness's large-model rows); one process stays padded.
    assert ("AOT test harness: packed rows" in done.stderr) == (processes > 1)
    out = Path(yaml.safe_load(cfg.read_text())["output_dir"])
    (out / "train.log").write_text(done.stdout + done.stderr)
    return out


@pytest.fixture(scope="module")
def references(tmp_path_factory, tiny_model):
    """One-process runs, trained on first use and shared by the cases that sort the same samples."""
    done: dict[tuple[str, bool, int], Path] = {}

    def get(key: tuple[str, bool, int]) -> Path:
        if key not in done:
            mode, lora, accumulate = key
            batches = (
                {"micro_batch_size": 4, "gradient_accumulation_steps": accumulate, "aot_sort_scope": "step"}
                if accumulate
                else {"micro_batch_size": 8}
            )
            folder = tmp_path_factory.mktemp("one") / "run"
            done[key] = train_ok(config(folder, tiny_model, mode, lora, **batches))
        return done[key]

    return get


def check_engine(case: Case, out: Path) -> None:
    """Both ranks trained under the engine, with the model really sharded."""
    ranks = engine_records(out)
    assert len(ranks) == 2
    for rank in ranks:
        if case.engine == "fsdp2":
            assert rank["distributed_type"] == "DistributedType.FSDP"
            assert rank["lm_head_type"] == "DTensor"
            assert rank["lm_head_local_shape"][0] < rank["lm_head_full_shape"][0]  # this rank's rows only
        else:
            assert rank["distributed_type"] == "DistributedType.DEEPSPEED"
            assert rank["wrapped"] == "DeepSpeedEngine"
            assert rank["zero_stage"] == int(case.engine[-1])
            if case.engine == "zero3":  # every parameter partitioned, the head included
                assert rank["partitioned"] == rank["parameters"]
                assert rank["lm_head_local_shape"] == [0]


def engine_run(case: Case, folder: Path, model: Path, **changes) -> Path:
    settings = {**case.rank_changes(), **ENGINES[case.engine](folder.parent), **changes}
    cfg = config(folder, model, case.mode, case.lora, plugins=["axolotl_aot.AOTPlugin", PROBE], **settings)
    return train_ok(cfg, processes=2)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_two_sharded_ranks_equal_one_process_with_the_union_batch(case, tmp_path, tiny_model, references):
    resumed = case in RESUMED and FAST_STACK
    checkpoints = (
        {"save_steps": 1, **(SHARDED_CHECKPOINTS if case.engine == "fsdp2" else {})} if resumed else {}
    )
    out = engine_run(case, tmp_path / "run", tiny_model, **checkpoints)
    check_engine(case, out)
    logs = [entry for entry in log_history(out) if "loss" in entry]
    sort_size = 8 if case.mode == "paired" or case.scope == "world" else 16
    assert [entry["aot/sort_size"] for entry in logs] == [sort_size] * STEPS  # both ranks in every sort
    if case.mode == "unpaired":
        assert all(entry["aot/one_sided"] == 0 for entry in logs)
    reference = references(case.reference())
    if case.mode == "paired":  # the whole-set evaluation under the engine (chunked too) equals one process
        evaluated = [entry for entry in log_history(out) if "eval_loss" in entry]
        one = [entry for entry in log_history(reference) if "eval_loss" in entry]
        for key in ("eval_loss", "eval_aot/violation_fraction", "eval_rewards/margins", "eval_logps/chosen"):
            assert evaluated[-1][key] == pytest.approx(one[-1][key], rel=1e-4, abs=1e-6), key
    expected = final_weights(reference)
    got = final_weights(out)  # the final adapter loads with PEFT's keys (axolotl's FSDP2 save repaired)
    update = weight_change(expected, tiny_model)
    difference = max_difference(got, expected)
    print(f"{case.id}: max |2 ranks - 1 process| = {difference:.3g}, largest weight change {update:.3g}")
    assert update > 1e-3
    assert difference <= TOLERANCE
    if case.engine != "zero2":  # aot-cli report scores the sharded run's output as the one-process output
        sharded, one = (reported_rewards(folder, case.mode) for folder in (out, references(case.reference())))
        np.testing.assert_allclose(sharded, one, rtol=1e-4, atol=1e-5)
        assert np.abs(one).max() > 0
    if resumed:
        check_resume(case, out, tmp_path / "resumed", tiny_model, **checkpoints)


def check_resume(case: Case, out: Path, folder: Path, model: Path, **checkpoints) -> None:
    """Resumed from the sharded step-2 checkpoint (FSDP2: per-rank DCP shards; ZeRO-3: its partitioned
    ``global_step2`` states), a run trains step 3 only and lands on the uninterrupted weights."""
    checkpoint = out / "checkpoint-2"
    shards = "pytorch_model_fsdp_0" if case.engine == "fsdp2" else "global_step2"
    assert (checkpoint / shards).is_dir(), sorted(p.name for p in checkpoint.iterdir())
    resumed = engine_run(case, folder, model, resume_from_checkpoint=str(checkpoint), **checkpoints)
    assert (resumed / "train.log").read_text().count("'loss': ") == STEPS - 2  # only step 3 trained
    difference = max_difference(final_weights(resumed), final_weights(out))
    print(f"{case.id}: max |resumed - uninterrupted| = {difference:.3g}")
    assert difference <= TOLERANCE


def reported_rewards(out: Path, mode: str) -> np.ndarray:
    """``aot-cli report``'s held-out rewards of a run's final output (an adapter or a whole model)."""
    from axolotl_aot.tools import report

    data = TEST_PAIRS if mode == "paired" else ROOT / "axolotl_aot/data/parity_unpaired_test.jsonl"
    cfg = report.load_report_config(out.parent / "cfg.yml", data)
    dataset = report.load_eval_dataset(cfg, max_samples=32)
    model, reference, tokenizer = report.load_models(out, cfg, None, "cpu")
    scores = report.score(model, reference, tokenizer, dataset, cfg, batch_size=16, device="cpu")
    return np.concatenate([scores.reward_pos, scores.reward_neg])
