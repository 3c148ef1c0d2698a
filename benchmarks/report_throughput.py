"""`aot-cli report` scoring throughput against a plain batched forward over the same samples.

    .venv/bin/python benchmarks/report_throughput.py --repeats 3

The report scores each sequence under the checkpoint and the reference (two forwards), with
axolotl's formatting, TRL's tokenization and collation, length bucketing and log-probs. The
baseline runs the same two forwards on the same tokenized sequences in dataset order and
does nothing else. Ratio = report throughput / plain throughput (target >= 0.9).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from common import build_models, dataset
from datasets import concatenate_datasets
from transformers import AutoModelForCausalLM, AutoTokenizer

from axolotl_aot.integration.compat import dict_default
from axolotl_aot.tools import report
from axolotl_aot.tools.report.score import scoring_trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    options = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    with tempfile.TemporaryDirectory() as folder:
        policy_path, reference_path = build_models(Path(folder), options.hidden_size, options.layers)
        policy = AutoModelForCausalLM.from_pretrained(policy_path, dtype=torch.float32).eval()
        reference = AutoModelForCausalLM.from_pretrained(reference_path, dtype=torch.float32).eval()
        tokenizer = AutoTokenizer.from_pretrained(policy_path)
        rows = concatenate_datasets([dataset("paired", "test")] * 4)  # 400 pairs, 800 sequences
        cfg = dict_default({"aot_mode": "paired", "rl_beta": 0.1, "sequence_len": 64})
        scorer = scoring_trainer(policy, reference, tokenizer, rows, cfg, options.batch_size, "cpu")
        tokenized = scorer.train_dataset
        plain_batches = [
            scorer.data_collator(
                [tokenized[i] for i in range(start, min(start + options.batch_size, len(tokenized)))]
            )
            for start in range(0, len(tokenized), options.batch_size)
        ]

        def run_report() -> None:
            report.score(policy, reference, tokenizer, rows, cfg, batch_size=options.batch_size, device="cpu")

        def run_plain() -> None:
            with torch.no_grad():
                for batch in plain_batches:
                    for model in (policy, reference):
                        model(
                            input_ids=batch["input_ids"],
                            attention_mask=batch["attention_mask"],
                            use_cache=False,
                        )

        run_plain()  # warm-up
        timings: dict[str, list[float]] = {"report": [], "plain": []}
        for _ in range(options.repeats):  # alternate so that drifts hit both
            for name, work in (("report", run_report), ("plain", run_plain)):
                start = time.perf_counter()
                work()
                timings[name].append(time.perf_counter() - start)
        sequences = 2 * len(rows)
        report_s, plain_s = statistics.median(timings["report"]), statistics.median(timings["plain"])
        print(
            f"{sequences} sequences x 2 models: report {sequences / report_s:.0f} seq/s, "
            f"plain forward {sequences / plain_s:.0f} seq/s, ratio {plain_s / report_s:.3f}"
        )


if __name__ == "__main__":
    main()
