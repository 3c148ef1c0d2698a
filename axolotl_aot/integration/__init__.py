"""The axolotl integration, a module per concept (docs/library.md has a line on each).

``plugin`` (the axolotl plugin), ``args`` (its YAML keys), ``settings`` (the audit of every key
that reaches TRL), ``beta`` (which beta a run trains with), ``modes`` (what follows from ``rl:``),
``training_args`` (the settings each trainer carries), ``factory`` (a trainer outside axolotl),
``trainers`` (the two AOT trainers), ``rows`` (each mode's rows and loss), ``scopes`` (the sort
scopes), ``rng`` (random-state replay), ``logps`` (chunked log-probs), ``evaluation`` (whole-set
metrics), ``labels`` (the label parser), ``sampler`` (label mixing), ``launch`` (multi-process
launches), ``data_checks`` (the data checks of validate and training), ``records``
(dataset rows and their lines), ``checkpoints`` (checkpoint folders and resume), ``adapter_keys``
(saved LoRA names), ``chat`` (chat rendering), and ``compat``, the one door to TRL and axolotl.
"""
