"""What ``rl: aot`` and ``rl: aot_unpaired`` do with every axolotl key that reaches TRL: the audit table.

``SETTINGS`` lists the axolotl keys that reach (or would be expected to reach) TRL's DPO/KTO
trainers, whose ``_compute_loss`` the AOT trainers replace: each is honoured, refused when the
config loads, or warned about (no effect, harmless). ``setting_problems`` is its only reader:
``AOTArgs``' validator raises the first refused key, ``AOTPlugin.register`` logs the warnings
(once per config load, on rank 0), and ``aot-cli validate`` reports them all. docs/settings.md is
the same table for users (a test keeps the two equal).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from axolotl_aot.integration import beta as betas
from axolotl_aot.integration import compat
from axolotl_aot.integration.modes import Mode, of_config

Kind = Literal["honoured", "refused", "warned"]
PRECOMPUTE_ACROSS_RANKS = (
    "TRL caches the reference log-probs next to rank 0's copy of the dataset, and the other ranks look for "
    "the file next to theirs (axolotl loads them from another cache), so they would crash"
)


# Options that cannot work with AOT, and why: rejected at config time, not at step 1000.
INCOMPATIBLE: dict[str, str] = {
    "sample_packing": "AOT scores whole (prompt, completion) sequences; packing merges them",
    "eval_sample_packing": "AOT scores whole (prompt, completion) sequences; packing merges them",
    "dpo_padding_free": "TRL's DPO padding_free is off since TRL 1.14; the AOT trainers pack each "
    "micro-batch themselves (aot_padding_free, on by default)",
    "dpo_use_weighting": "per-pair weights break the uniform measures that the OT sort couples",
    "dpo_use_liger_kernel": "Liger's fused DPO loss computes its own loss, not AOT's; the AOT trainers "
    "already compute log-probs without the vocabulary logits (tune the chunk with aot_logits_chunk_size)",
    "dpo_loss_type": "rl: aot/aot_unpaired sets the loss; use aot_cost to choose the cost",
    "dpo_loss_weights": "rl: aot/aot_unpaired sets the loss; there is one loss to weight",
    "dpo_label_smoothing": "use aot_label_smoothing",
    "kto_desirable_weight": "per-label weights break the uniform measures that the OT sort couples",
    "kto_undesirable_weight": "per-label weights break the uniform measures that the OT sort couples",
}


def _number(value: Any) -> float | None:
    """``value`` as a float, or None when it is no number (the schema then reports it).

    PyYAML reads ``1e-2`` (no dot) as a string, which pydantic still turns into 0.01."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _given(value: Any) -> bool:
    return value is not None


def _truthy(value: Any) -> bool:
    return bool(value)


def _positive(value: Any) -> bool:
    number = _number(value)
    return number is not None and number > 0


def _above_one(value: Any) -> bool:
    number = _number(value)
    return number is not None and number > 1


def _dropped_by_axolotl(key: str) -> Callable[[Any], bool]:
    """Set, and not a field of this axolotl's schema (axolotl 0.19 has no ``eval_on_start``)."""

    def check(value: Any) -> bool:
        return value is not None and key not in compat.axolotl_fields()

    return check


@dataclass(frozen=True)
class Setting:
    """What ``rl: aot`` (paired) and ``rl: aot_unpaired`` do with one axolotl key.

    ``reason``: refused/warned, why (a clause after "cannot be used with rl: aot: " or "has no effect
    with rl: aot: "); honoured, how. ``fix``: what a refused key's user should do ("" = remove it).
    ``when``: which values count as set (the default: any but null). ``unpaired``/``unpaired_reason``:
    when rl: aot_unpaired differs from rl: aot.
    """

    paired: Kind
    reason: str
    fix: str = ""
    unpaired: Kind | None = None
    unpaired_reason: str = ""
    when: Callable[[Any], bool] = _given
    stacks: str = "0.19, 0.21"

    def kind(self, mode: str) -> Kind:
        """Under the mode named ``mode`` (``Mode.name``: paired or unpaired)."""
        return self.unpaired if mode == "unpaired" and self.unpaired else self.paired

    def why(self, mode: str) -> str:
        return self.unpaired_reason if mode == "unpaired" and self.unpaired_reason else self.reason


LOSS_OWN = "the AOT loss replaces TRL's, so it has no such term"
MULTIMODAL = (
    "it configures multimodal (image) training, and the AOT trainers score input_ids and attention_mask "
    "only: the images would be ignored"
)
GRPO_ONLY = (
    "only axolotl's GRPO-family trainers (and its vLLM code) read this trl: field; rl: dpo/kto ignore it too"
)
# Fields of axolotl's ``trl:`` section (``TRLConfig``, the same in 0.19 and 0.21) that only GRPO reads;
# the others have their own entry below. A test checks this against the installed TRLConfig.
_GRPO_TRL_NAMES = """
    async_prefetch chat_template_kwargs entropy_coef entropy_coef_delta entropy_coef_max
    entropy_coef_min entropy_target epsilon epsilon_high generation_batch_size generation_kwargs
    importance_sampling_level log_completions log_multimodal mask_truncated_completions min_p
    multi_objective_aggregation num_completions_to_print num_generations num_iterations
    off_policy_mask_threshold prefetch_depth repetition_penalty replay_buffer_size
    replay_recompute_logps reroll_max_groups reroll_start_fraction reward_funcs reward_num_workers
    reward_weights rollout_func scale_rewards skip_zero_advantage_batches streaming_min_groups
    streaming_partial_batch temperature top_k top_p use_adaptive_entropy use_bias_correction_kl
    use_data_producer use_liger_loss use_vllm vllm_enable_sleep_mode vllm_guided_decoding_regex
    vllm_importance_sampling_cap vllm_importance_sampling_clip_max vllm_importance_sampling_clip_min
    vllm_importance_sampling_correction vllm_importance_sampling_mode vllm_lora_sync vllm_mode
    vllm_server_host vllm_server_port vllm_server_timeout vllm_sync_interval
"""
GRPO_TRL_FIELDS: tuple[str, ...] = tuple(_GRPO_TRL_NAMES.split())
TRL_OTHER = "trl.*"  # a key under trl: that is no TRLConfig field
NO_LABELS = (
    "the AOT trainers pass no labels to the model's forward: they score completions with their own chunked "
    "LM head (aot_logits_chunk_size), and with aot_logits_chunk_size: 0 the forward returns the plain logits"
)
SUPERVISED_ONLY = "axolotl passes it to its supervised (causal) trainer only, not to TRL's DPO/KTO trainers"
CCE_PLUGIN = "axolotl.integrations.cut_cross_entropy.CutCrossEntropyPlugin"

SETTINGS: dict[str, Setting] = {
    # beta: honoured (what the AOT trainers use as self.beta), with value checks in _beta_problems.
    "rl_beta": Setting("honoured", "TRL's beta, the reward scale; the plugin's default is the paper's 0.01"),
    "trl.beta": Setting("honoured", "TRL's beta; axolotl passes it instead of rl_beta when both are set"),
    "dpo_beta": Setting("honoured", "deprecated: axolotl copies it into rl_beta when rl_beta is unset"),
    "precompute_ref_log_probs": Setting(
        "honoured",
        "axolotl passes it to TRL's DPO config; TRL precomputes the reference log-probs with the AOT "
        "trainers' reference pass",
        unpaired_reason="axolotl passes it for rl: dpo only; the plugin passes it to TRL's KTO config",
    ),
    "router_aux_loss_coef": Setting(
        "honoured", "the plugin's key, passed to TRL's config; the AOT trainers add the router loss as TRL"
    ),
    **{key: Setting("refused", reason, when=_truthy) for key, reason in INCOMPATIBLE.items()},
    "context_parallel_size": Setting(
        "refused", "the AOT trainers score whole sequences on each rank", when=_above_one
    ),
    "dpo_ld_alpha": Setting(
        "refused",
        "LD-DPO length weighting is not part of AOT (TRL would apply it to the reference log-probs only)",
        stacks="0.21 (0.19 drops the key)",
    ),
    "orpo_alpha": Setting(
        "refused",
        "it is ORPO's weight; for rl: dpo/kto axolotl passes it to TRL as beta when neither rl_beta nor "
        "trl.beta is set, and under rl: aot rl_beta (default 0.01) sets beta",
        fix="Set the beta with rl_beta and remove orpo_alpha.",
    ),
    "simpo_gamma": Setting(
        "refused", f"it is SimPO's target reward margin, read for rl: simpo only; {LOSS_OWN}"
    ),
    "cpo_alpha": Setting("refused", f"it is CPO's SFT-term weight, read for rl: simpo only; {LOSS_OWN}"),
    "beta": Setting(
        "refused",
        "beta is not an axolotl key (axolotl drops it)",
        fix="Set the beta with rl_beta and remove beta.",
    ),
    "max_prompt_len": Setting(
        "refused",
        "axolotl never applies max_prompt_len to DPO/KTO data: TRL cuts prompt + completion to "
        "sequence_len, keeping the start",
        fix="Remove max_prompt_len and set sequence_len to the longest prompt + completion to keep.",
    ),
    "pad_to_multiple_of": Setting(
        "refused",
        "axolotl's pad_to_multiple_of collator emits the pre-TRL-1 batch layout (no input_ids, "
        "attention_mask or completion_mask), which neither TRL's DPO trainer nor AOT can read",
        when=_truthy,
        unpaired="warned",
        unpaired_reason="axolotl builds its pad_to_multiple_of collator for rl: dpo/ipo/orpo/simpo only, "
        "so rl: kto (which rl: aot_unpaired reuses) ignores it",
    ),
    "processor_type": Setting("refused", MULTIMODAL),
    "image_size": Setting("refused", MULTIMODAL),
    "image_resize_algorithm": Setting("refused", MULTIMODAL),
    "trl.max_completion_length": Setting(
        "refused",
        "axolotl reads trl.max_completion_length for GRPO only: TRL cuts DPO/KTO prompt + completion to "
        "sequence_len, keeping the start",
        fix="Remove trl.max_completion_length and set sequence_len.",
    ),
    "trl.loss_type": Setting(
        "refused",
        "trl.loss_type is GRPO's, and rl: aot/aot_unpaired sets the loss",
        fix="Remove trl.loss_type; choose the cost with aot_cost.",
    ),
    "trl.sync_ref_model": Setting(
        "refused",
        "axolotl passes trl.sync_ref_model to GRPO only, so the reference model would never be synced "
        "(TR-DPO)",
        when=_truthy,
    ),
    "trl.router_aux_loss_coef": Setting(
        "refused",
        "it is not a field of axolotl's trl: section, so axolotl drops it",
        fix="Set the top-level router_aux_loss_coef instead.",
    ),
    "trl.ref_model_mixup_alpha": Setting("warned", GRPO_ONLY),
    "trl.ref_model_sync_steps": Setting("warned", GRPO_ONLY),
    **{f"trl.{name}": Setting("warned", GRPO_ONLY) for name in GRPO_TRL_FIELDS},
    TRL_OTHER: Setting("warned", "it is not a field of axolotl's trl: section, so axolotl drops it"),
    "neftune_noise_alpha": Setting(
        "warned", "axolotl adds NEFTune noise in supervised fine-tuning only (its causal trainer builder)"
    ),
    "noisy_embedding_alpha": Setting(
        "warned",
        "deprecated name of neftune_noise_alpha, which axolotl applies in supervised fine-tuning only",
    ),
    "lora_dropout": Setting(
        "warned",
        "TRL's DPO/KTO trainers (disable_dropout=True, which axolotl does not change) set every "
        "torch.nn.Dropout of the model to p=0 after adding the adapter, LoRA's included",
        fix="Set lora_dropout: 0.",
        when=_positive,
    ),
    "truncation_mode": Setting(
        "warned",
        "it is not an axolotl key (axolotl drops it); TRL's DPO trainer keeps the start of each "
        "sequence (keep_start), TRL's KTO trainer has no such option",
    ),
    "padding_value": Setting(
        "warned", "it is not an axolotl key (axolotl drops it); TRL pads with the tokenizer's pad token"
    ),
    "use_logits_to_keep": Setting(
        "warned", "it is not an axolotl key (axolotl drops it), nor an option of TRL's DPO/KTO trainers"
    ),
    "disable_dropout": Setting(
        "warned",
        "it is not an axolotl key (axolotl drops it); TRL's DPO/KTO default disable_dropout=True always "
        "applies: every torch.nn.Dropout of the model is set to p=0",
    ),
    "rl_adapter_ref_model": Setting(
        "warned", "it is not an axolotl schema key, so axolotl drops it and its code never sees it set"
    ),
    "early_stopping_patience": Setting(
        "honoured",
        "the plugin adds the EarlyStoppingCallback that axolotl adds for supervised runs only, with "
        "load_best_model_at_end and metric_for_best_model (default eval_loss); refused without an "
        "evaluation set and eval_steps",
    ),
    "eval_on_start": Setting(
        "warned",
        "axolotl 0.19 has no eval_on_start key (it drops it); the plugin never evaluates at step 0, "
        "where the policy equals its reference",
        when=_dropped_by_axolotl("eval_on_start"),
        stacks="0.19 (0.21 reads it: see start_eval_args in plugin.py)",
    ),
    # Supervised fine-tuning only: axolotl's causal trainer builder and SFT data path read these.
    "group_by_length": Setting(
        "warned",
        "axolotl groups rows by length in supervised fine-tuning only (its causal trainer builder); the "
        "DPO/KTO trainers draw each micro-batch at random",
        when=_truthy,
    ),
    "curriculum_sampling": Setting(
        "warned",
        "axolotl samples in dataset order in supervised fine-tuning only (its causal trainer builder); the "
        "DPO/KTO trainers draw each micro-batch at random",
        when=_truthy,
    ),
    "lr_quadratic_warmup": Setting("warned", f"{SUPERVISED_ONLY}: the warmup stays linear", when=_truthy),
    "dataloader_drop_last": Setting(
        "warned", f"{SUPERVISED_ONLY}: their data loaders keep the last, smaller micro-batch", when=_truthy
    ),
    "auto_find_batch_size": Setting("warned", SUPERVISED_ONLY, when=_truthy),
    "ddp_bucket_cap_mb": Setting("warned", f"{SUPERVISED_ONLY}: DDP keeps its default bucket size"),
    "ddp_broadcast_buffers": Setting("warned", f"{SUPERVISED_ONLY}: DDP keeps transformers' default"),
    "loss_watchdog_threshold": Setting(
        "warned", "axolotl adds its loss watchdog callback in supervised fine-tuning only"
    ),
    "train_on_inputs": Setting(
        "warned",
        "it is axolotl's supervised label masking; TRL's DPO/KTO trainers score the completion tokens only",
        when=_truthy,
    ),
    "pad_to_sequence_len": Setting(
        "warned",
        "it pads the batches of axolotl's supervised collator; TRL's DPO/KTO collators pad each batch to "
        "its longest sequence",
        when=_truthy,
    ),
    # Loss kernels: each replaces the loss of the model's forward given labels. The Cut Cross Entropy
    # plugin is checked in _cut_cross_entropy_problems; Liger's other kernels change the backbone, which
    # the AOT log-probs run (honoured, docs/settings.md).
    "chunked_cross_entropy": Setting(
        "warned",
        f"axolotl's chunked cross-entropy replaces the loss of the model's forward given labels; {NO_LABELS}",
        when=_truthy,
    ),
    "liger_cross_entropy": Setting(
        "warned",
        f"Liger's cross-entropy kernel replaces the loss of the model's forward given labels; {NO_LABELS}",
        when=_truthy,
    ),
    "liger_fused_linear_cross_entropy": Setting(
        "warned",
        "Liger's fused linear cross-entropy computes the loss of the model's forward from its labels "
        f"without the logits; {NO_LABELS}",
        when=_truthy,
    ),
    "liger_use_token_scaling": Setting(
        "warned",
        "it scales the per-token loss of liger_fused_linear_cross_entropy, which the AOT trainers never "
        "compute",
        when=_truthy,
    ),
}


@dataclass(frozen=True)
class SettingProblem:
    key: str  # "rl_beta", "trl.loss_type"
    kind: Literal["refused", "warned"]
    message: str


def _lookup(data: dict[str, Any], key: str) -> tuple[bool, Any]:
    """Whether ``key`` ("name" or "trl.name") is in the raw config, and its value."""
    section, _, name = key.rpartition(".")
    if section:
        data = data.get(section) if isinstance(data.get(section), dict) else {}
    return name in data, data.get(name)


def setting_problems(data: dict[str, Any], mode: Mode | None = None) -> list[SettingProblem]:
    """Every refused or warned key of the raw config ``data`` (``SETTINGS``), in the table's order.

    ``mode``: by default the config's own (``modes.of_config``). An empty list for a config that is
    not rl: aot/aot_unpaired.
    """
    mode = mode or of_config(data)
    if mode is None:
        return []
    rl = mode.rl
    problems = [
        *_beta_problems(data, rl),
        *_engine_problems(data, rl),
        *_compile_problems(data, rl),
        *_early_stopping_problems(data, rl),
        *_cut_cross_entropy_problems(data, rl),
    ]
    trl = data.get("trl") if isinstance(data.get("trl"), dict) else {}
    keys = [*SETTINGS, *(f"trl.{name}" for name in trl if f"trl.{name}" not in SETTINGS)]
    for key in keys:
        if key == TRL_OTHER:
            continue
        setting = SETTINGS.get(key, SETTINGS[TRL_OTHER])
        kind = setting.kind(mode.name)
        present, value = _lookup(data, key)
        if kind == "honoured" or not present or not setting.when(value):
            continue
        if kind == "refused":
            fix = setting.fix or f"Remove {key}."
            message = f"{key}: {value!r} cannot be used with rl: {rl}: {setting.why(mode.name)}. {fix}"
        else:
            fix = (
                f" {setting.fix.rstrip('.')} to silence this."
                if setting.fix
                else f" Remove {key} to silence this."
            )
            message = f"{key}: {value!r} has no effect with rl: {rl}: {setting.why(mode.name)}.{fix}"
        problems.append(SettingProblem(key, kind, message))
    return problems


def _engine_problems(data: dict[str, Any], rl: str) -> Iterator[SettingProblem]:
    """Settings that do not mix with the sharded engine the config asks for (docs/sharded.md)."""
    fsdp2 = (
        str(data.get("fsdp_version")) == "2"
        or str((data.get("fsdp_config") or {}).get("fsdp_version")) == "2"
    )
    if fsdp2 and _truthy(data.get("precompute_ref_log_probs")):
        yield SettingProblem(
            "precompute_ref_log_probs",
            "refused",
            f"precompute_ref_log_probs: true cannot be used with fsdp_version: 2 for rl: {rl}: "
            + (
                "TRL's DPO trainer fingerprints the model by converting its weights to numpy, which "
                "FSDP2's sharded DTensor weights refuse (TRL issue #6470)"
                if rl == "aot"
                else f"{PRECOMPUTE_ACROSS_RANKS} (in any multi-process run)"
            )
            + ". Remove precompute_ref_log_probs (the reference pass then runs with each step)",
        )
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    if processes > 1 and not fsdp2 and _truthy(data.get("precompute_ref_log_probs")):
        # TRL (1.9, 1.14) writes the cache next to rank 0's dataset copy and every rank opens that name
        # next to its own: FileNotFoundError (measured: data parallel, FSDP2 and ZeRO-3, both modes).
        yield SettingProblem(
            "precompute_ref_log_probs",
            "refused",
            f"precompute_ref_log_probs: true cannot be used with {processes} processes: "
            f"{PRECOMPUTE_ACROSS_RANKS}. Remove precompute_ref_log_probs (the reference pass then runs "
            "with each step), or train in one process",
        )
    if fsdp2 and (_truthy(data.get("load_in_4bit")) or _truthy(data.get("load_in_8bit"))):
        key = "load_in_4bit" if _truthy(data.get("load_in_4bit")) else "load_in_8bit"
        yield SettingProblem(
            key,
            "refused",
            f"{key}: true cannot be used with fsdp_version: 2 for rl: {rl}: axolotl refuses quantised base "
            "weights under FSDP2 for preference training (check_fsdp2_base_model_quant_rl). Use LoRA on "
            "bf16 weights under FSDP2, or QLoRA with DeepSpeed (deepspeed: zero2.json)",
        )
    if (data.get("fsdp") or data.get("fsdp_config")) and not fsdp2:
        yield SettingProblem(
            "fsdp_version",
            "warned",
            f"fsdp_version: {data.get('fsdp_version', 1)!r} (FSDP1) has a cost with rl: {rl}: FSDP1 "
            "flattens the LM head into its shards, so the AOT log-probs use the full [tokens, vocab] "
            "logits. Set fsdp_version: 2 to keep the chunked log-probs",
        )


def _early_stopping_problems(data: dict[str, Any], rl: str) -> Iterator[SettingProblem]:
    """``early_stopping_patience`` needs evaluations to count: HF's callback would otherwise fail its
    assertion at the first step (no eval strategy) or never stop (nothing evaluated)."""
    if not _positive(data.get("early_stopping_patience")):
        return
    evaluation = data.get("test_datasets") or _positive(data.get("val_set_size"))
    evaluates = data.get("eval_strategy") != "no" and (data.get("eval_steps") or data.get("eval_strategy"))
    if not (evaluation and evaluates):
        missing = "an evaluation set (test_datasets or val_set_size)" if not evaluation else "eval_steps"
        yield SettingProblem(
            "early_stopping_patience",
            "refused",
            f"early_stopping_patience: {data['early_stopping_patience']!r} cannot be used with rl: {rl} "
            f"without {missing}: it stops training after that many evaluations without improvement of "
            "metric_for_best_model. Add it, or remove early_stopping_patience.",
        )


def _compile_problems(data: dict[str, Any], rl: str) -> Iterator[SettingProblem]:
    """What ``torch_compile`` compiles: the chunked log-probs bypass the Trainer's compiled model, so the
    trainers compile the backbone they call; the chunked head between it and the loss stays eager."""
    if _truthy(data.get("torch_compile")) and data.get("aot_logits_chunk_size") != 0:
        yield SettingProblem(
            "torch_compile",
            "warned",
            f"torch_compile: {data.get('torch_compile')!r} with rl: {rl} compiles the model's backbone; the "
            "chunked LM head (aot_logits_chunk_size) and the AOT loss run eagerly after it. Set "
            "aot_logits_chunk_size: 0 to compile the model's whole forward, [tokens, vocab] logits included",
        )


def cut_cross_entropy_on(data: dict[str, Any]) -> bool:
    """Whether the raw config runs axolotl's Cut Cross Entropy plugin: listed (0.21 also spells it
    ``module:Class``) and ``cut_cross_entropy`` not false (the plugin's default is true)."""
    plugins = {str(name).replace(":", ".") for name in data.get("plugins") or []}
    return CCE_PLUGIN in plugins and bool(data.get("cut_cross_entropy", True))


def _cut_cross_entropy_problems(data: dict[str, Any], rl: str) -> Iterator[SettingProblem]:
    """axolotl's Cut Cross Entropy plugin (on by default once listed): its one kernel is the loss of the
    model's forward given labels (``NO_LABELS``), so it does nothing for AOT; where axolotl's fork of the
    package (installable from git only) is missing, training would also stop when the model loads."""
    if not cut_cross_entropy_on(data):
        return
    value = data.get("cut_cross_entropy", True)
    why = "Cut Cross Entropy computes the loss of the model's forward from its labels, without the logits; "
    why += NO_LABELS
    fix = f"Remove {CCE_PLUGIN} from plugins, or set cut_cross_entropy: false"
    missing = compat.cut_cross_entropy_missing()
    if missing is None:
        message = f"cut_cross_entropy: {value!r} has no effect with rl: {rl}: {why}. {fix}, to silence this."
        yield SettingProblem("cut_cross_entropy", "warned", message)
        return
    yield SettingProblem(
        "cut_cross_entropy",
        "refused",
        f"cut_cross_entropy: {value!r} cannot be used with rl: {rl}: {why}. Here training would also stop "
        f"when the model loads: {missing.rstrip('.')}. {fix} (the fork would change nothing for AOT).",
    )


def _beta_problems(data: dict[str, Any], rl: str) -> Iterator[SettingProblem]:
    """Each beta must be finite and > 0, and the ones set must agree: axolotl passes the first of
    trl.beta, rl_beta, dpo_beta to TRL and drops the others silently."""
    given: dict[str, float] = {}
    for key, value in betas.betas_set(data).items():
        number = _number(value)
        if number is None:
            continue
        if not 0 < number < math.inf:
            yield SettingProblem(
                key,
                "refused",
                f"{key} must be a finite number > 0 for rl: {rl}; got {value!r} (the paper uses 0.01)",
            )
        else:
            given[key] = number
    if not given:
        return
    used, beta = next(iter(given.items()))
    for key, number in list(given.items())[1:]:
        if number != beta:
            yield SettingProblem(
                key,
                "refused",
                f"{key}: {number!r} cannot be used with {used}: {beta!r} for rl: {rl}: axolotl passes {used} "
                f"to TRL and drops {key}, so the run would train with beta {beta!r}. Set the beta in one "
                "place (rl_beta).",
            )
