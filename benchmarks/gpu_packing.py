"""Padding-free batches on a GPU: packed against padded log-probs, gradients, step time and memory.

    python3 benchmarks/gpu_packing.py --device cuda --size large [--dtype bfloat16]

A randomly initialised ``LlamaForCausalLM`` (built from a config, seeded, no download) with ``sdpa``
attention gets one ragged micro-batch: --seqs sequences of lengths drawn uniformly from
--min-len..--max-len, right-padded as TRL's collators pad, the completion mask on the tail of each
(the prompt is 25-75% of the sequence). The same batch runs twice through the AOT trainers' log-prob
pass (``logps.sequence_logps``, chunked LM head): as it is (``packing.padded``) and as
``packing.layout`` packs it for the model (rows chosen by ``packing.RowCost``). It measures:

1. exactness: each sequence's summed completion log-prob, packed against padded, in float32
   (matmuls in full float32: no TF32) and in --dtype (weights cast; not expected to be bit-equal,
   so its difference is printed next to that of --dtype's padded log-probs from float32's); and the
   gradients of loss = sum of the log-probs, in float32 and in --dtype: relative norm of the
   difference, largest difference over the largest gradient, and the share of elements outside the
   CPU tests' tolerance (``tests/test_packing.py``: rtol 1e-5, atol 1e-5 * max |gradient|).
2. speed in --dtype: forward + backward of that loss (CUDA events on a GPU; 3 warm-ups, mean of 10),
   tokens computed per step (rows x width) against the real ones, peak memory of one step
   (``torch.cuda.max_memory_allocated``, reset before each) in all and above the weights, and the
   time of ``packing.layout`` itself (on the host: it reads the attention mask back).

Needs torch and transformers only (plus numpy, which the package imports): no TRL, no axolotl.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

# Run as a file from a copy of the repository without installing it (the GPU machine): the package
# is the repository's own. Importing it needs torch and numpy only (axolotl_aot/__init__.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from axolotl_aot.integration import packing
from axolotl_aot.integration.logps import ChunkedModel, chunked_head, sequence_logps

RTOL = 1e-5  # the CPU tests' float32 tolerance (issue 28)
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


@dataclass(frozen=True)
class Size:
    """A model and a micro-batch."""

    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    seqs: int
    min_len: int
    max_len: int


SIZES = {
    "tiny": Size(64, 2, 128, 4, 2, 384, 6, 8, 48),  # a CPU smoke run: seconds
    "medium": Size(1024, 8, 2816, 16, 8, 32_000, 16, 64, 1024),
    "large": Size(2048, 16, 5632, 16, 8, 128_000, 16, 64, 1024),
}


def build_model(size: Size, device: torch.device, seed: int) -> LlamaForCausalLM:
    """A seeded random Llama in float32 on ``device`` (initialised there: no host copy)."""
    config = LlamaConfig(
        vocab_size=size.vocab,
        hidden_size=size.hidden,
        intermediate_size=size.intermediate,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=size.kv_heads,
        max_position_embeddings=max(4096, 2 * size.max_len),
        tie_word_embeddings=False,
        attn_implementation="sdpa",
    )
    torch.manual_seed(seed)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    model.config._attn_implementation = "sdpa"
    return model.float().train()


def ragged_batch(size: Size, device: torch.device, seed: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``completion_mask`` of ragged lengths."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(size.min_len, size.max_len + 1, (size.seqs,), generator=generator)
    width = int(lengths.max())
    positions = torch.arange(width)
    mask = (positions < lengths.unsqueeze(1)).long()
    prompts = (lengths * (0.25 + 0.5 * torch.rand(size.seqs, generator=generator))).long().clamp(min=1)
    completion = mask * (positions >= prompts.unsqueeze(1)).long()
    ids = torch.randint(1, size.vocab, (size.seqs, width), generator=generator) * mask
    return {
        k: v.to(device)
        for k, v in {"input_ids": ids, "attention_mask": mask, "completion_mask": completion}.items()
    }


def layout_of(model: LlamaForCausalLM, batch: dict[str, torch.Tensor]) -> packing.Tokens:
    keys = ("input_ids", "attention_mask", "completion_mask")
    return packing.layout(
        *(batch[k] for k in keys), packing.attention_of(model), packing.RowCost.of(model.config)
    )


def logps_and_grads(
    model: LlamaForCausalLM, head: ChunkedModel, tokens: packing.Tokens, chunk: int
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(sequences,) log-probs and the gradients of their sum, from zeroed gradients."""
    model.zero_grad(set_to_none=True)
    logps = sequence_logps(head, tokens, chunk).logps
    logps.sum().backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return logps.detach(), grads


def logps_differences(packed: torch.Tensor, padded: torch.Tensor) -> tuple[float, float]:
    """Largest absolute and largest relative difference of the per-sequence log-probs."""
    diff = (packed.double() - padded.double()).abs()
    return float(diff.max()), float((diff / padded.double().abs().clamp(min=1e-30)).max())


def grads_differences(
    packed: dict[str, torch.Tensor], padded: dict[str, torch.Tensor]
) -> tuple[float, float, float]:
    """Over all parameters: |packed - padded| / |padded| (norms), max |diff| / max |padded|, and the share
    of elements outside rtol/atol = 1e-5 (atol relative to the largest gradient, as the CPU tests)."""
    assert packed.keys() == padded.keys()
    diff_sq = ref_sq = 0.0
    diff_max = ref_max = 0.0
    for name, ref in padded.items():
        ref = ref.double()
        diff = (packed[name].double() - ref).abs()
        diff_sq += float(diff.square().sum())
        ref_sq += float(ref.square().sum())
        diff_max = max(diff_max, float(diff.max()))
        ref_max = max(ref_max, float(ref.abs().max()))
    outside = total = 0
    for name, ref in padded.items():
        ref = ref.double()
        diff = (packed[name].double() - ref).abs()
        outside += int((diff > RTOL * ref.abs() + RTOL * ref_max).sum())
        total += ref.numel()
    return (diff_sq / ref_sq) ** 0.5, diff_max / ref_max, outside / total


def timer(device: torch.device) -> Callable[[Callable[[], None]], float]:
    """Seconds of one call: CUDA events on a GPU, the wall clock elsewhere."""

    def cuda(fn: Callable[[], None]) -> float:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000

    def wall(fn: Callable[[], None]) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    return cuda if device.type == "cuda" else wall


def step_time_and_peak(
    model: LlamaForCausalLM, head: ChunkedModel, tokens: packing.Tokens, chunk: int, warmup: int, repeats: int
) -> tuple[float, float, float, float]:
    """Mean and standard deviation (s) of forward + backward, peak memory of one step and that peak
    above the memory held before it (GiB; 0 off a GPU)."""
    device = tokens.input_ids.device

    def step() -> None:
        model.zero_grad(set_to_none=True)
        sequence_logps(head, tokens, chunk).logps.sum().backward()

    for _ in range(warmup):
        step()
    model.zero_grad(set_to_none=True)
    peak = above = 0.0
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**30
        above = peak - before / 2**30
    measure = timer(device)
    times = [measure(step) for _ in range(repeats)]
    model.zero_grad(set_to_none=True)
    return statistics.mean(times), statistics.stdev(times) if repeats > 1 else 0.0, peak, above


def layout_time(model: LlamaForCausalLM, batch: dict[str, torch.Tensor], repeats: int) -> float:
    """Mean seconds of ``packing.layout`` on this batch (host work and the copies both ways)."""
    layout_of(model, batch)
    sync = torch.cuda.synchronize if batch["input_ids"].is_cuda else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        layout_of(model, batch)
        sync()
    return (time.perf_counter() - start) / repeats


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--dtype", choices=sorted(DTYPES), default="bfloat16", help="second exactness pass and timing"
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="large")
    parser.add_argument("--seqs", type=int, help="sequences in the micro-batch (default: the size's)")
    parser.add_argument("--min-len", type=int)
    parser.add_argument("--max-len", type=int)
    parser.add_argument("--vocab", type=int)
    parser.add_argument(
        "--chunk", type=int, default=256, help="LM-head chunk (aot_logits_chunk_size's default)"
    )
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()

    size = SIZES[options.size]
    overrides = {
        k: getattr(options, k) for k in ("seqs", "min_len", "max_len", "vocab") if getattr(options, k)
    }
    size = Size(**{**size.__dict__, **overrides})
    device, dtype = torch.device(options.device), DTYPES[options.dtype]
    torch.set_float32_matmul_precision("highest")  # float32 exactness: no TF32
    torch.backends.cudnn.allow_tf32 = False

    import transformers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, device {device}", end="")
    print(f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    model = build_model(size, device, options.seed)
    params = sum(p.numel() for p in model.parameters())
    head = chunked_head(model)
    assert isinstance(head, ChunkedModel), head
    problem = packing.packing_problem(model)
    print(
        f"model: Llama hidden {size.hidden}, {size.layers} layers, intermediate {size.intermediate}, "
        f"heads {size.heads}/{size.kv_heads} kv, vocab {size.vocab}: {params / 1e6:.0f}M parameters; "
        f"attention {packing.attention_of(model)}; packing_problem: {problem}"
    )
    batch = ragged_batch(size, device, options.seed)
    lengths = batch["attention_mask"].sum(1).tolist()
    padded = packing.padded(batch["input_ids"], batch["attention_mask"], batch["completion_mask"])
    packed = layout_of(model, batch)
    if packed.position_ids is None:
        sys.exit("packing.layout kept this batch padded (packing not estimated cheaper): nothing to compare")
    real = sum(lengths)
    completions = int(batch["completion_mask"].sum())
    print(
        f"batch: {size.seqs} sequences, lengths {size.min_len}..{size.max_len} "
        f"(drawn: {min(lengths)}..{max(lengths)}), "
        f"{real} real tokens, {completions} completion tokens; padded {tuple(padded.input_ids.shape)} = "
        f"{padded.input_ids.numel()} tokens, padding fraction {1 - real / padded.input_ids.numel():.1%}; "
        f"packed {tuple(packed.input_ids.shape)} = {packed.input_ids.numel()} tokens, "
        f"filler fraction {1 - real / packed.input_ids.numel():.1%}"
    )

    # 1. exactness, float32 then --dtype
    exact_rows = []
    start = time.perf_counter()
    padded32, padded_grads = logps_and_grads(model, head, padded, options.chunk)
    packed32, packed_grads = logps_and_grads(model, head, packed, options.chunk)
    abs32, rel32 = logps_differences(packed32, padded32)
    g_norm, g_max, g_out = grads_differences(packed_grads, padded_grads)
    del padded_grads, packed_grads
    exact_rows.append(
        ["float32", f"{abs32:.2e}", f"{rel32:.2e}", "-", f"{g_norm:.2e}", f"{g_max:.2e}", f"{g_out:.2e}"]
    )
    if dtype != torch.float32:
        model.to(dtype)
        head = chunked_head(model)
        assert isinstance(head, ChunkedModel), head
        padded_low, padded_grads = logps_and_grads(model, head, padded, options.chunk)
        packed_low, packed_grads = logps_and_grads(model, head, packed, options.chunk)
        abs_low, rel_low = logps_differences(packed_low, padded_low)
        ref_abs, ref_rel = logps_differences(padded_low, padded32)
        g_norm, g_max, g_out = grads_differences(packed_grads, padded_grads)
        del padded_grads, packed_grads
        exact_rows.append(
            [
                options.dtype,
                f"{abs_low:.2e}",
                f"{rel_low:.2e}",
                f"{ref_abs:.2e} / {ref_rel:.2e}",
                f"{g_norm:.2e}",
                f"{g_max:.2e}",
                f"{g_out:.2e}",
            ]
        )
    print(
        f"\n1. Exactness, packed vs padded ({time.perf_counter() - start:.1f} s); "
        "log-probs of the sequences: "
        f"{padded32.min():.1f}..{padded32.max():.1f} (float32, padded)\n"
    )
    header = [
        "dtype",
        "logps max abs diff",
        "logps max rel diff",
        "padded vs float32 padded (abs / rel)",
        "grad rel diff (norm)",
        "grad max diff / max grad",
        "grad elements outside 1e-5",
    ]
    print(table(header, exact_rows))

    # 2. speed in --dtype
    rows = []
    for name, tokens in (("padded", padded), ("packed", packed)):
        mean, std, peak, above = step_time_and_peak(
            model, head, tokens, options.chunk, options.warmup, options.repeats
        )
        computed = tokens.input_ids.numel()
        rows.append((name, tokens, mean, std, peak, above, computed))
    base = rows[0][2]
    layout_s = layout_time(model, batch, options.repeats)
    print(
        f"\n2. Forward + backward in {options.dtype}, mean of {options.repeats} after {options.warmup} "
        f"warm-ups ({'CUDA events' if device.type == 'cuda' else 'wall clock'}); "
        f"packing.layout itself: {layout_s * 1e3:.2f} ms\n"
    )
    header = [
        "batch",
        "rows x width",
        "computed tokens",
        "real tokens",
        "step ms (± sd)",
        "real tokens/s",
        "speed-up",
        "peak GiB",
        "peak above weights GiB",
    ]
    printed = [
        [
            name,
            f"{tokens.input_ids.shape[0]} x {tokens.input_ids.shape[1]}",
            f"{computed:,}",
            f"{real:,}",
            f"{mean * 1e3:.1f} ± {std * 1e3:.1f}",
            f"{real / mean:,.0f}",
            f"{base / mean:.2f}x",
            f"{peak:.2f}",
            f"{above:.2f}",
        ]
        for name, tokens, mean, std, peak, above, computed in rows
    ]
    print(table(header, printed))


if __name__ == "__main__":
    main()
