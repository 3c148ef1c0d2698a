"""Chunked completion log-probs against the full logits of real model classes; gradcheck of the Function."""

from __future__ import annotations

import pytest
import torch
import transformers
from trl.trainer.utils import selective_log_softmax

from axolotl_aot.integration.logps import LMHead, chunked_head, sequence_logps, token_logps
from axolotl_aot.integration.packing import padded

COMMON = {
    "vocab_size": 97,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 64,
    "pad_token_id": 0,
}
ARCHITECTURES = {
    "llama-untied": ("LlamaConfig", {"tie_word_embeddings": False}),
    "llama-tied": ("LlamaConfig", {"tie_word_embeddings": True}),
    "qwen2": ("Qwen2Config", {}),
    "mistral": ("MistralConfig", {}),
    "gemma2-softcap": ("Gemma2Config", {"final_logit_softcapping": 0.5, "head_dim": 8}),
    "phi3": ("Phi3Config", {}),
    "cohere-scale": ("CohereConfig", {"logit_scale": 0.37}),
    "granite-divisor": ("GraniteConfig", {"logits_scaling": 3.0}),
}


def tiny(name: str) -> torch.nn.Module:
    config_cls, extra = ARCHITECTURES[name]
    torch.manual_seed(0)
    config = getattr(transformers, config_cls)(**COMMON, **extra)
    config._attn_implementation = "sdpa"
    model = transformers.AutoModelForCausalLM.from_config(config).double()
    with torch.no_grad():  # random heads of tiny models are near uniform: make the log-probs informative
        model.get_output_embeddings().weight.mul_(20.0)
    return model


def batch(padding_side: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """3 sequences of different lengths: prompt then completion, padded on ``padding_side``."""
    generator = torch.Generator().manual_seed(1)
    lengths, prompts = [11, 7, 9], [4, 3, 5]
    width = max(lengths)
    ids = torch.zeros(3, width, dtype=torch.long)
    attention, completion = torch.zeros_like(ids), torch.zeros_like(ids)
    for row, (length, prompt) in enumerate(zip(lengths, prompts, strict=True)):
        where = slice(0, length) if padding_side == "right" else slice(width - length, width)
        ids[row, where] = torch.randint(1, 97, (length,), generator=generator)
        attention[row, where] = 1
        completion[row, where] = torch.tensor([0] * prompt + [1] * (length - prompt))
    return ids, attention, completion


def full_logps(model: torch.nn.Module, ids: torch.Tensor, attention: torch.Tensor, completion: torch.Tensor):
    """The oracle: the model's own forward and TRL's per-token log-softmax."""
    logits = model(input_ids=ids, attention_mask=attention, use_cache=False).logits
    per_token = selective_log_softmax(logits[:, :-1], ids[:, 1:])
    return per_token.masked_fill(completion[:, 1:] == 0, 0.0).sum(-1)


def grads(model: torch.nn.Module, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad()
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_chunked_equals_full_logits(name, padding_side):
    model = tiny(name)
    ids, attention, completion = batch(padding_side)
    chunked = chunked_head(model)
    assert not isinstance(chunked, str), chunked
    weights = torch.tensor([0.3, -1.1, 0.7], dtype=torch.float64)  # a loss that weighs sequences differently

    expected = full_logps(model, ids, attention, completion)
    expected_grads = grads(model, (weights * expected).sum())
    got = sequence_logps(chunked, padded(ids, attention, completion), chunk_size=5).logps  # 5 divides no row
    got_grads = grads(model, (weights * got).sum())

    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert got_grads.keys() == expected_grads.keys()
    assert len(got_grads) == len(list(model.parameters()))  # every parameter, the head's included
    for key, expected_grad in expected_grads.items():
        error = (got_grads[key] - expected_grad).norm() / expected_grad.norm()
        assert error < 1e-4, (key, error.item())


def test_bf16_autocast_uses_the_models_matmul_dtype_and_a_float32_logsumexp():
    """Under CPU bf16 autocast (what bf16: true does on a float32 model) the head's matmul runs in
    bf16 as the model's own does, the log-sum-exp in float32: the result matches the model's
    autocast logits log-softmaxed in float32, and differs from the float32 model by bf16 rounding."""
    model = tiny("llama-untied").float()
    ids, attention, completion = batch("right")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(input_ids=ids, attention_mask=attention, use_cache=False).logits
        got = sequence_logps(chunked_head(model), padded(ids, attention, completion), chunk_size=5).logps
        got.sum().backward()
    per_token = selective_log_softmax(logits[:, :-1].float(), ids[:, 1:])
    expected = per_token.masked_fill(completion[:, 1:] == 0, 0.0).sum(-1)
    assert logits.dtype == torch.bfloat16 and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, atol=1e-3, rtol=1e-3)
    exact = full_logps(model, ids, attention, completion)
    assert (got - exact).abs().max() > 1e-4  # bf16 rounding is visible: the matmul did run in bf16
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_function_gradcheck_with_bias_scale_and_softcap():
    generator = torch.Generator().manual_seed(2)
    hidden = torch.randn(7, 5, dtype=torch.float64, generator=generator, requires_grad=True)
    weight = torch.randn(11, 5, dtype=torch.float64, generator=generator, requires_grad=True)
    bias = torch.randn(11, dtype=torch.float64, generator=generator, requires_grad=True)
    targets = torch.randint(0, 11, (7,), generator=generator)

    def function(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return token_logps(h, targets, LMHead(w, b, scale=0.8, softcap=2.0), chunk_size=3)

    assert torch.autograd.gradcheck(function, (hidden, weight, bias))


def test_heads_that_cannot_be_reproduced_give_a_reason():
    from peft import LoraConfig, get_peft_model

    model = tiny("llama-untied")
    lora_head = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "lm_head"]))
    assert "LM head is a Linear" in chunked_head(lora_head)  # peft's lora.Linear, not torch's

    lora_body = get_peft_model(tiny("llama-untied"), LoraConfig(r=2, target_modules=["q_proj"]))
    assert not isinstance(chunked_head(lora_body), str)

    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2))
    assert "model type 'gpt2'" in chunked_head(gpt2)


def largest_allocation(step) -> int:
    """Bytes of the largest allocation one op makes while ``step`` runs (an upper bound on its tensors)."""
    with torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True
    ) as prof:
        step()
    return max(e.self_cpu_memory_usage for e in prof.events())  # an op's own net allocations


def test_a_training_step_never_allocates_the_vocabulary_logits():
    """128k vocabulary, the trainer's loss (policy pass with gradients, reference pass under no_grad)
    and backward: the largest allocation is >= 4x below the [completion tokens, vocab] float32
    logits, while the policy pass with aot_logits_chunk_size: 0 (the control) does allocate them."""
    from trainer_setup import loss_path

    from axolotl_aot.integration.args import AOTArgs
    from axolotl_aot.integration.trainers import AOTPairedTrainer

    config = transformers.LlamaConfig(
        **{**COMMON, "vocab_size": 128_256, "hidden_size": 16, "num_hidden_layers": 1}
    )
    torch.manual_seed(0)
    policy, reference = (transformers.AutoModelForCausalLM.from_config(config) for _ in range(2))
    ids = torch.randint(1, 128_256, (4, 64))  # 2 pairs: chosen rows, then rejected rows
    attention, completion = torch.ones_like(ids), torch.ones_like(ids)
    completion[:, :24] = 0
    logits_bytes = int(completion[:, 1:].sum()) * 128_256 * 4
    trainer = loss_path(AOTPairedTrainer, policy, "local")
    trainer.ref_model = reference

    def step(chunk: int, **reference: torch.Tensor) -> None:
        trainer.aot = AOTArgs(aot_sort_scope="local", aot_logits_chunk_size=chunk)
        policy.zero_grad(set_to_none=False)
        inputs = {"input_ids": ids, "attention_mask": attention, "completion_mask": completion, **reference}
        trainer._compute_loss(policy, inputs).backward()

    given = {"ref_chosen_logps": torch.zeros(2), "ref_rejected_logps": torch.zeros(2)}
    step(0, **given)  # allocate the gradients before measuring
    ours = largest_allocation(lambda: step(16))  # the reference pass through the trainer too
    full = largest_allocation(lambda: step(0, **given))  # the policy pass alone
    assert full >= logits_bytes
    assert 4 * ours <= logits_bytes, (ours, logits_bytes)


def test_a_partitioned_head_is_gathered_in_forward_and_again_in_backward():
    """What ZeRO-3 does to the head outside its module's forward (the weight's storage emptied) and
    what ``gather`` undoes: the log-probs and gradients equal those of the whole weight."""
    import contextlib

    model = tiny("llama-untied")
    ids, attention, completion = batch("right")
    expected = full_logps(model, ids, attention, completion)
    expected.sum().backward()
    head = model.get_output_embeddings().weight
    expected_grad, whole = head.grad.clone(), head.data.clone()
    model.zero_grad()
    head.data = torch.empty(0, dtype=head.dtype)  # partitioned: nothing of it on this rank
    entered = []

    @contextlib.contextmanager
    def gather(weight: torch.Tensor, bias: torch.Tensor | None):
        assert weight is head and bias is None
        entered.append(len(entered))
        head.data = whole
        try:
            yield
        finally:
            head.data = torch.empty(0, dtype=head.dtype)

    chunked = chunked_head(model, gather=gather)
    assert not isinstance(chunked, str), chunked
    got = sequence_logps(chunked, padded(ids, attention, completion), chunk_size=4).logps
    assert entered == [0] and head.numel() == 0  # forward: gathered, then partitioned again
    (grad,) = torch.autograd.grad(got.sum(), [head])
    assert entered == [0, 1]  # backward recomputed the chunks with the whole weight
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(grad, expected_grad)


def test_a_partitioned_head_without_a_gather_falls_back_with_the_reason():
    model = tiny("llama-untied")
    model.get_output_embeddings().weight.ds_id = 7  # how DeepSpeed ZeRO-3 marks its parameters
    assert "partitioned by DeepSpeed ZeRO-3" in chunked_head(model)
