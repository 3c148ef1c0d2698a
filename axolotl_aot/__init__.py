"""axolotl-aot: Alignment via Optimal Transport (arXiv:2406.05882) for Axolotl.

``AOTPlugin`` (for ``plugins: [axolotl_aot.AOTPlugin]``) is imported on first use, so the math does
not pay for importing axolotl. One module per concept (docs/library.md says more of each):

ot.losses: the AOT losses, paired and unpaired, for any sample sizes
ot.quantiles: the sorted-quantile coupling of n positives and m negatives
ot.dominance: dominance statistics of positive over negative rewards
ot.distributed: the sort over every data-parallel rank, with exact per-sample gradients
integration.plugin: the axolotl plugin
integration.args: the YAML keys the plugin adds
integration.settings: the audit of every axolotl key that reaches TRL
integration.beta: which beta a run trains with
integration.modes: the two modes and what follows from ``rl:``
integration.training_args: the AOT settings each trainer carries
integration.factory: a configured AOT trainer outside axolotl's builder
integration.trainers: the two AOT trainers
integration.rows: each mode's rows and loss
integration.scopes: the sort scopes local, world and step
integration.rng: the random state a forward starts from, replayed
integration.logps: completion log-probs without the vocabulary logits
integration.packing: padding-free batches: a micro-batch's sequences packed into rows
integration.evaluation: the whole-set evaluation metrics
integration.labels: the one parser of an unpaired row's label
integration.sampler: micro-batches with both labels (unpaired)
integration.launch: multi-process launches on CPUs, unsharded ranks refused
integration.data_checks: the data checks, shared by validate and training
integration.records: rows of a dataset source, one at a time, with their lines
integration.checkpoints: checkpoint folders and the one to resume from
integration.adapter_keys: a saved LoRA adapter's tensor names
integration.chat: chat rows rendered with the model's template
integration.compat: the one door to TRL and axolotl
tools.validate: ``aot-cli validate``
tools.convert: ``aot-cli convert-dataset``
tools.report: ``aot-cli report``
tools.generation: ``aot-cli report --generate``: checkpoints judged by their own samples
tools.smoke: ``aot-cli smoke``
tools.config: a YAML validated as axolotl does, without a model
tools.saved_models: whether a checkpoint's weights load as saved
tools.tiny_model: the tiny local model
tools.synthetic: the bundled parity data
"""

from typing import Any

from axolotl_aot.ot.dominance import DominanceStats, dominance_stats
from axolotl_aot.ot.losses import COSTS, aot_paired_loss, aot_unpaired_loss

__all__ = [
    "COSTS",
    "PLUGIN",
    "AOTPlugin",
    "DominanceStats",
    "aot_paired_loss",
    "aot_unpaired_loss",
    "dominance_stats",
]

# What a config lists under `plugins:`; also the entry point axolotl >= 0.21 loads by itself (pyproject).
PLUGIN = "axolotl_aot.AOTPlugin"


def __getattr__(name: str) -> Any:
    if name == "AOTPlugin":
        from axolotl_aot.integration.plugin import AOTPlugin

        return AOTPlugin
    raise AttributeError(f"module 'axolotl_aot' has no attribute {name!r}")
