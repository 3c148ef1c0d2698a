"""Training throughput of padding-free and compiled AOT batches against TRL's AOT, on the same batches.

    .venv/bin/python benchmarks/throughput.py [--steps 8] [--warmup 3] [--only lognormal-1.5] [--skip-trl116]

Five variants train on the same rows in the same order (``train_sampling_strategy: sequential``,
seed 0, one micro-batch per optimizer step), each in its own process:

1. ours padded: ``rl: aot`` with ``aot_padding_free: false`` (TRL's padded batches);
2. ours packed: ``aot_padding_free: true`` (each micro-batch's sequences packed into rows without
   padding, position_ids restarting per sequence; the rows are ``packing.layout``'s choice);
3. ours packed and compiled: also ``torch_compile: true`` (the backbone the AOT loss runs, compiled);
4. TRL's AOT through axolotl: ``rl: dpo`` + ``dpo_loss_type: [aot]`` (TRL 1.9, full logits);
5. TRL 1.16's own ``DPOTrainer(loss_type=["aot"])`` with its fused LM head (log-probs in chunks,
   without the logits), run by ``.venv-latest``'s Python with TRL 1.16 first on ``PYTHONPATH``.

Ours runs at ``aot_sort_scope: local``, where its loss is TRL's ``aot`` loss (chosen and rejected
halves paired), so every variant's first losses must agree: 1-3 to ~1e-5 relative, 4 and 5 to
float32 noise of full-logits vs chunked log-probs. Variants 1-4 run in spawned children of this
``.venv`` process (``common.run_in_child``), 5 in a subprocess of ``.venv-latest/bin/python``.

TRL 1.16 cannot share a venv with axolotl (axolotl pins TRL), so it lives in a folder of its own,
installed without dependencies next to ``.venv-latest``'s torch/transformers/accelerate/datasets
(TRL 1.16 asks for transformers>=4.56.2, accelerate>=1.10.1, datasets>=4.7.0; axolotl 0.21's venv
has 5.20.1, 1.15.0 and 5.0.1; anything unmet is installed into the same folder, also without
dependencies). After ``make test-latest`` (or its venv) has built ``.venv-latest``:

    .venv/bin/python benchmarks/throughput.py --install-trl116
    # runs: .venv-latest/bin/python -m pip install --no-deps --upgrade \\
    #           --target .venv-latest/trl-1.16 trl==1.16.0
    # then checks TRL 1.16's requirements against .venv-latest (installing unmet ones the same way)
    # and imports trl.DPOTrainer from there

Without ``.venv-latest`` or that folder, variant 5 is printed as skipped with the reason
(``--skip-trl116`` skips it on purpose). The folder is pure Python: ``--trl116-python
.venv/bin/python`` runs TRL 1.16 on ``.venv``'s torch and transformers instead (TRL 1.16's
requirements hold there too), the same releases as variants 1-4; each table's "Ran on" line says
which releases each variant had.

Data (``--only``; by default chat, lognormal-0.5 and lognormal-1.5), the same rows for every
variant, ``--steps`` x ``--batch-size`` pairs:

- ``chat``: the bundled parity pairs (``common.dataset``: axolotl's ``chatml.prompt_pairs`` text);
- ``lognormal-0.5``, ``lognormal-1.0``, ``lognormal-1.5``: generated text rows whose prompt, chosen
  and rejected token lengths are drawn independently, log-normal with median ``--max-length``/8
  and that sigma, clipped to [1, ``--max-length``/2 - 1] (so prompt + completion + EOS fit without
  truncation). Text, not token ids: TRL 1.9's DPO and axolotl tokenize ``prompt``/``chosen``/
  ``rejected`` text themselves (no pre-tokenized path), so each row is random words of the tiny
  tokenizer that are one token each (its 9 space-prefixed words and 10 digits), and a length of n
  tokens is n such words.

Measured per variant: optimizer steps/s (1 / the median step time after ``--warmup``,
``common.timed_training``); completions/s (2 per pair) and its ratio to variant 4's; real tokens
per step (the collated batch's attention-mask sum); the tokens one forward computes per step
(padded: the batch tensor's numel; packed: the rows the trainer's own ``packing.layout`` returned,
recorded by wrapping that function: real tokens plus the rows' filler); their padding share
(1 - real / computed; the table's heading gives the padded batch's); the child's peak RSS in MiB
(``ru_maxrss``, as ``common.run_in_child``); the first 3 losses, exact (recorded from
``compute_loss``), with their largest relative difference to variant 1's under the table.
Without compilation a hook on the policy's backbone checks that the model was given exactly that
many tokens, so a trainer that ignores ``aot_padding_free`` fails loudly (the variant's row says
FAILED, the other variants still run, the exit status is 1). The model: a locally built Llama
(``--hidden-size`` x ``--layers``, vocabulary 384, sdpa attention), float32 on the CPU, AdamW.
stdout is only the tables (paste into RESULTS.md); logs and one JSON line per variant go to stderr.

Time: measured at a tiny configuration (``--steps 4 --warmup 1 --batch-size 2 --hidden-size 32
--layers 1 --max-length 128``, all 4 distributions) on the shared 2-core machine under a load of
3-4: 10.3 minutes, of which each child's imports, model loading and data preparation ~15 s
(variants 4 and 5 together ~30-50 s), and the compiled child 65-100 s (compilation). Extrapolated
to the defaults (3 distributions, 8 steps of 8 pairs, hidden 64 x 2, max length 1024; steps of
~0.1 s for chat to ~1-4 s for a padded lognormal-1.5 step of ~13k tokens): about 10-12 minutes on
an idle machine (``--only lognormal-1.0`` adds ~3). ``--max-length 512`` quarters the longest steps.
Run it on an idle machine: with other work on the 2 cores, torch's threads wait on each other and
a step of even the smallest model takes ~1 s, whatever the variant.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common import ROOT, TRAINING_ARGS, build_models, dataset, run_in_child, timed_training, trainer

LATEST_PYTHON = ROOT / ".venv-latest/bin/python"
TRL116_DIR = ROOT / ".venv-latest/trl-1.16"
TRL116 = "trl==1.16.0"
SIGMAS = (0.5, 1.0, 1.5)
DISTRIBUTIONS = ("chat", *(f"lognormal-{s}" for s in SIGMAS))
DEFAULT = ("chat", "lognormal-0.5", "lognormal-1.5")  # lognormal-1.0 with --only: the run fits ~12 min
FIRST_LOSSES = 3  # printed and compared per variant
# (label, trainer, its arguments): ours at aot_sort_scope local, where its loss is TRL's aot loss.
VARIANTS = (
    ("1. ours padded", "aot", {"scope": "local", "aot_padding_free": False}),
    ("2. ours packed", "aot", {"scope": "local", "aot_padding_free": True}),
    ("3. ours packed + compiled", "aot", {"scope": "local", "aot_padding_free": True, "torch_compile": True}),
    ("4. TRL AOT via axolotl (rl: dpo, [aot])", "trl-aot", {}),
    ("5. TRL 1.16 DPOTrainer(aot), fused LM head", "trl116", {}),
)
TRAINING = {  # as common.trainer's, for TRL 1.16's own DPOConfig
    **TRAINING_ARGS,
    "gradient_accumulation_steps": 1,
    "train_sampling_strategy": "sequential",
    "disable_tqdm": True,
}


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Everything written to stdout, by Python or by native code (the tokenizer trainer's progress,
    the Trainer's log lines), goes to stderr meanwhile: stdout is the tables'."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


# --- data -------------------------------------------------------------------------------------


def one_token_words(tokenizer: Any) -> list[str]:
    """Words each of which is one token wherever it stands in a text of such words: the tokenizer's
    space-prefixed all-letter tokens and its digits (split one by one)."""
    words = []
    for index in range(len(tokenizer)):
        text = tokenizer.decode([index])
        alone = (text[:1] == " " and text[1:].isalpha()) or (len(text) == 1 and text.isdigit())
        if alone and tokenizer(text, add_special_tokens=False).input_ids == [index]:
            words.append(text)
    return words


def lognormal_rows(tokenizer: Any, sigma: float, count: int, max_length: int, seed: int = 0) -> list[dict]:
    """``count`` text pairs whose prompt, chosen and rejected token lengths are independent log-normals."""
    generator = random.Random(seed)
    words = one_token_words(tokenizer)
    median, top = max_length / 8, max(1, max_length // 2 - 1)

    def text() -> tuple[int, str]:
        n = min(top, max(1, round(generator.lognormvariate(math.log(median), sigma))))
        return n, "".join(generator.choice(words) for _ in range(n))

    rows = []
    for _ in range(count):
        (p, prompt), (c, chosen), (r, rejected) = text(), text(), text()
        for n, completion in ((p + c, prompt + chosen), (p + r, prompt + rejected)):
            if len(tokenizer(completion, add_special_tokens=False).input_ids) != n:
                raise AssertionError("the generated words are not one token each")
        rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return rows


def chat_rows(count: int) -> list[dict]:
    """The bundled parity pairs, formatted as training formats them, cycled to ``count`` rows."""
    bundled = dataset("paired").to_list()
    return [bundled[i % len(bundled)] for i in range(count)]


# --- one variant, in its own process --------------------------------------------------------


def instrument(built: Any, packed: bool, check_model: bool) -> dict[str, list]:
    """Record each micro-batch's tokens and loss from ``compute_loss``. ``packed``: the rows the
    trainer's own ``packing.layout`` returns (wrapped here; its first call in a micro-batch is the
    policy's). ``check_model``: what the policy's backbone was given (its grad-enabled forwards)."""
    import torch

    record: dict[str, list] = {
        "real": [],
        "padded": [],
        "computed": [],
        "loss": [],
        "model": [],
        "layouts": [],
    }
    current: list[int] = []  # the packed layouts' sizes within one compute_loss
    if packed:
        try:
            from axolotl_aot.integration import packing
        except ImportError as error:
            raise RuntimeError("aot_padding_free: axolotl_aot.integration.packing is missing") from error
        layout = packing.layout

        def recording_layout(*args: Any, **kwargs: Any) -> Any:
            tokens = layout(*args, **kwargs)
            current.append(tokens.input_ids.numel())
            return tokens

        packing.layout = recording_layout  # the trainer calls it as packing.layout
    compute_loss = built.compute_loss

    def recording(model: Any, inputs: dict, *args: Any, **kwargs: Any) -> Any:
        current.clear()
        out = compute_loss(model, inputs, *args, **kwargs)
        record["loss"].append(float((out[0] if isinstance(out, tuple) else out).detach()))
        record["real"].append(int(inputs["attention_mask"].sum()))
        record["padded"].append(inputs["input_ids"].numel())
        record["computed"].append(current[0] if current else inputs["input_ids"].numel())
        record["layouts"].append(len(current))
        return out

    built.compute_loss = recording
    if check_model:

        def seen(module: Any, args: tuple, kwargs: dict) -> None:
            ids = kwargs.get("input_ids", args[0] if args else None)
            if torch.is_grad_enabled() and ids is not None:
                record["model"].append(ids.numel())

        built.accelerator.unwrap_model(built.model).base_model.register_forward_pre_hook(
            seen, with_kwargs=True
        )
    return record


def summary(
    label: str, record: dict[str, list], timing: dict[str, Any], pairs: int, packed: bool = False
) -> dict[str, Any]:
    if packed and not any(record["layouts"]):
        raise RuntimeError(f"{label}: the trainer never called packing.layout: aot_padding_free did not pack")
    if record["model"] and record["model"] != record["computed"]:
        raise RuntimeError(
            f"{label}: the model computed {record['model'][:4]}... tokens per micro-batch, the layout "
            f"has {record['computed'][:4]}...: the trainer did not "
            + ("pack (aot_padding_free)" if record["computed"] != record["padded"] else "pad as expected")
        )
    steps = len(record["loss"])
    steps_per_s = 1 / timing["step_seconds"]
    return {
        "steps_per_s": steps_per_s,
        "completions_per_s": steps_per_s * 2 * pairs,
        "real": sum(record["real"]) / steps,
        "padded": sum(record["padded"]) / steps,
        "computed": sum(record["computed"]) / steps,
        "losses": record["loss"][:FIRST_LOSSES],
        "steps": timing["steps"],
        "stack": stack(),
    }


def stack() -> str:
    """The releases a variant ran on."""
    import importlib.metadata

    versions = (f"{name} {importlib.metadata.version(name)}" for name in ("torch", "transformers", "trl"))
    return f"Python {sys.version.split()[0]}, " + ", ".join(versions)


def ours_or_axolotl(
    label: str, name: str, models: tuple[Path, Path], output: Path, rows_file: Path, args: dict, warmup: int
) -> dict[str, Any]:
    """Variants 1-4 in a ``common.run_in_child`` child of ``.venv``."""
    from datasets import Dataset

    with stdout_to_stderr():
        rows = Dataset.from_list(json.loads(rows_file.read_text()))
        built = trainer(name, models, output, rows=rows, **args)
        packed = bool(args.get("aot_padding_free"))
        record = instrument(built, packed, check_model=not args.get("torch_compile"))
        timing = timed_training(built, warmup)
    return summary(label, record, timing, args["per_device_train_batch_size"], packed)


def trl116_child(spec_file: str, out_file: str) -> None:
    """Variant 5, in ``.venv-latest``'s Python with TRL 1.16 first on the path."""
    import torch
    import trl
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    spec = json.loads(Path(spec_file).read_text())
    if trl.__version__ != "1.16.0":
        raise RuntimeError(f"TRL {trl.__version__} imported from {trl.__file__}, not 1.16.0")
    policy, reference = (AutoModelForCausalLM.from_pretrained(m, dtype=torch.float32) for m in spec["models"])
    fields = {field.name for field in dataclasses.fields(DPOConfig)}
    training = {k: v for k, v in {**TRAINING, **spec["args"]}.items() if k in fields}
    config = DPOConfig(output_dir=spec["output"], loss_type=["aot"], **training)
    built = DPOTrainer(
        policy,
        reference,
        args=config,
        train_dataset=Dataset.from_list(json.loads(Path(spec["rows"]).read_text())),
        processing_class=AutoTokenizer.from_pretrained(spec["models"][0]),
    )
    if "train_sampling_strategy" not in fields:  # an older transformers: the same order all the same
        from torch.utils.data import SequentialSampler

        built._get_train_sampler = lambda *args, **kwargs: SequentialSampler(built.train_dataset)
    record = instrument(built, packed=False, check_model=True)
    result = summary(
        spec["label"],
        record,
        timed_training(built, spec["warmup"]),
        spec["args"]["per_device_train_batch_size"],
    )
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(out_file).write_text(json.dumps(result))


def trl116_problem(options: argparse.Namespace) -> str | None:
    """Why variant 5 cannot run here, or None."""
    if options.skip_trl116:
        return "--skip-trl116"
    if not Path(options.trl116_python).exists():
        return f"{options.trl116_python} not found (make test-latest builds .venv-latest)"
    if not (Path(options.trl116_dir) / "trl").is_dir():
        return f"TRL 1.16 not installed in {options.trl116_dir} (run this script with --install-trl116)"
    return None


def trl116_env(options: argparse.Namespace) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(options.trl116_dir), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def run_trl116(options: argparse.Namespace, folder: Path, spec: dict[str, Any]) -> dict[str, Any]:
    spec_file, out_file, log = folder / "trl116.json", folder / "trl116-result.json", folder / "trl116.log"
    spec_file.write_text(json.dumps(spec))
    out_file.unlink(missing_ok=True)
    command = [str(options.trl116_python), __file__, "--trl116-child", str(spec_file), str(out_file)]
    with log.open("w") as output:
        done = subprocess.run(
            command, env=trl116_env(options), stdout=output, stderr=subprocess.STDOUT, check=False
        )
    if done.returncode != 0 or not out_file.exists():
        tail = "\n".join(log.read_text().splitlines()[-25:])
        raise RuntimeError(f"TRL 1.16 child failed (exit {done.returncode}):\n{tail}")
    return json.loads(out_file.read_text())


def install_trl116(options: argparse.Namespace) -> None:
    """TRL 1.16 into its own folder without dependencies; then its unmet requirements, the same way."""
    python, target = str(options.trl116_python), str(options.trl116_dir)
    pip = [python, "-m", "pip", "install", "--no-deps", "--upgrade", "--target", target]
    print("$", " ".join([*pip, TRL116]), flush=True)
    subprocess.run([*pip, TRL116], check=True)
    check = (
        "import importlib.metadata as m, packaging.requirements as r\n"
        "unmet = []\n"
        "for line in m.requires('trl') or []:\n"
        "    req = r.Requirement(line)\n"
        "    if req.marker is not None and not req.marker.evaluate({'extra': ''}):\n"
        "        continue\n"
        "    try:\n"
        "        ok = req.specifier.contains(m.version(req.name), prereleases=True)\n"
        "    except m.PackageNotFoundError:\n"
        "        ok = False\n"
        "    print(req, 'ok' if ok else 'UNMET')\n"
        "    unmet += [] if ok else [str(req)]\n"
        "print('UNMET=' + ';'.join(unmet))\n"
    )
    done = subprocess.run(
        [python, "-c", check], env=trl116_env(options), capture_output=True, text=True, check=True
    )
    print(done.stdout, end="")
    unmet = [x for x in done.stdout.splitlines()[-1].removeprefix("UNMET=").split(";") if x]
    if unmet:
        print("$", " ".join([*pip, *unmet]), flush=True)
        subprocess.run([*pip, *unmet], check=True)
    probe = "import trl; from trl import DPOConfig, DPOTrainer; print('TRL', trl.__version__, trl.__file__)"
    subprocess.run([python, "-c", probe], env=trl116_env(options), check=True)


# --- the comparison -------------------------------------------------------------------------


def cell_losses(losses: list[float]) -> str:
    return " / ".join(f"{x:.7g}" for x in losses)


def relative(a: list[float], b: list[float]) -> float:
    return max((abs(x - y) / max(abs(y), 1e-12) for x, y in zip(a, b, strict=False)), default=math.nan)


def table(title: str, results: dict[str, dict | str]) -> None:
    baseline = results.get(VARIANTS[3][0])
    base = baseline["completions_per_s"] if isinstance(baseline, dict) else None
    padded = next((r for r in results.values() if isinstance(r, dict)), None)
    share = 1 - padded["real"] / padded["padded"] if padded else math.nan
    print(f"\n### {title} (padding share of the padded batch: {share:.1%})\n")
    print("| variant | steps/s | completions/s | vs TRL AOT (4) | real tokens/step | computed tokens/step "
          "| padding share | peak MiB | first losses |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for label, result in results.items():
        if isinstance(result, str):
            print(f"| {label} | {result} | | | | | | | |")
            continue
        ratio = f"{result['completions_per_s'] / base:.3f}" if base else "n/a"
        filler = 1 - result["real"] / result["computed"]
        print(
            f"| {label} | {result['steps_per_s']:.3f} | {result['completions_per_s']:.2f} | {ratio} "
            f"| {result['real']:,.0f} | {result['computed']:,.0f} | {filler:.1%} "
            f"| {result['peak_rss_mib']:,.0f} | {cell_losses(result['losses'])} |"
        )
    reference = results.get(VARIANTS[0][0])
    if isinstance(reference, dict):
        checks = []
        for label, result in list(results.items())[1:]:
            if isinstance(result, dict):
                difference = relative(result["losses"], reference["losses"])
                bound = 1e-5 if label.split(".")[0] in "23" else None
                flag = "" if bound is None or difference <= bound else " **over 1e-5**"
                checks.append(f"{label.split('.')[0]}: {difference:.1e}{flag}")
        print(
            f"\nFirst {FIRST_LOSSES} losses, largest relative difference to 1 (ours padded): "
            + "; ".join(checks)
        )
    stacks: dict[str, list[str]] = {}
    for label, result in results.items():
        if isinstance(result, dict):
            stacks.setdefault(result["stack"], []).append(label.split(".")[0])
    print("Ran on: " + "; ".join(f"{', '.join(labels)}: {name}" for name, labels in stacks.items()))
    print(flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3, help="steps left out of the median step time")
    parser.add_argument("--batch-size", type=int, default=8, help="pairs per micro-batch (= per step)")
    parser.add_argument("--max-length", type=int, default=1024, help="longest generated sequence (tokens)")
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument(
        "--only", choices=DISTRIBUTIONS, nargs="+", help=f"data distributions (default: {' '.join(DEFAULT)})"
    )
    parser.add_argument("--variants", type=int, nargs="+", choices=range(1, 6), help="variants to run (1-5)")
    parser.add_argument("--skip-trl116", action="store_true", help="skip variant 5 (TRL 1.16)")
    parser.add_argument("--trl116-python", type=Path, default=LATEST_PYTHON)
    parser.add_argument("--trl116-dir", type=Path, default=TRL116_DIR, help="where TRL 1.16 is installed")
    parser.add_argument(
        "--install-trl116", action="store_true", help="install TRL 1.16 into --trl116-dir, then exit"
    )
    parser.add_argument("--trl116-child", nargs=2, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.trl116_child:
        return trl116_child(*options.trl116_child)
    if options.install_trl116:
        return install_trl116(options)
    skipped = trl116_problem(options)
    chosen = [v for i, v in enumerate(VARIANTS, 1) if not options.variants or i in options.variants]
    print(
        f"{options.steps} steps of {options.batch_size} pairs (median step time after {options.warmup}), "
        f"Llama {options.hidden_size} x {options.layers}, max length {options.max_length}, float32, CPU",
        flush=True,
    )
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        with stdout_to_stderr():
            models, data = prepare(folder, options)
        for distribution, (rows_file, pairs, max_length) in data.items():
            shared = {
                "max_steps": options.steps,
                "per_device_train_batch_size": options.batch_size,
                "max_length": max_length,
            }
            results: dict[str, dict | str] = {}
            for label, name, extra in chosen:
                output = folder / f"{distribution}-{label[0]}"
                try:
                    if name != "trl116":
                        args = {
                            **shared,
                            **extra,
                            "train_sampling_strategy": "sequential",
                            "disable_tqdm": True,
                        }
                        results[label] = run_in_child(
                            ours_or_axolotl, label, name, models, output, rows_file, args, options.warmup
                        )
                    elif skipped:
                        results[label] = f"skipped: {skipped}"
                    else:
                        spec = {"label": label, "models": [str(m) for m in models], "output": str(output)}
                        spec |= {"rows": str(rows_file), "args": shared, "warmup": options.warmup}
                        results[label] = run_trl116(options, folder, spec)
                except Exception as error:  # the other variants still run; the exit status says it
                    traceback.print_exc()
                    failures.append(f"{distribution}: {label}: {type(error).__name__}: {error}")
                    results[label] = f"**FAILED**: {type(error).__name__}: {str(error).splitlines()[0][:160]}"
                print(f"{distribution}: {label}: {json.dumps(results[label])}", file=sys.stderr, flush=True)
            table(f"{distribution}: {pairs} pairs, max length {max_length}", results)
    if failures:
        sys.exit("FAILED variants:\n" + "\n".join(failures))


def prepare(folder: Path, options: argparse.Namespace) -> tuple[tuple[Path, Path], dict[str, tuple]]:
    """The models, and per distribution its rows' file, pair count and max_length."""
    from transformers import AutoTokenizer

    models = build_models(folder, options.hidden_size, options.layers)
    tokenizer = AutoTokenizer.from_pretrained(models[0])
    count = options.steps * options.batch_size
    data = {}
    for distribution in options.only or DEFAULT:
        if distribution == "chat":  # the bundled rows are short: TRL's max_length as common.trainer's
            rows, max_length = chat_rows(count), 64
        else:
            sigma = float(distribution.removeprefix("lognormal-"))
            rows, max_length = lognormal_rows(tokenizer, sigma, count, options.max_length), options.max_length
        rows_file = folder / f"{distribution}.json"
        rows_file.write_text(json.dumps(rows))
        data[distribution] = (rows_file, len(rows), max_length)
    return models, data


if __name__ == "__main__":
    main()
