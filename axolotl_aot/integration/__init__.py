"""The axolotl integration: the plugin (``plugin``) and its config keys (``args``), the two AOT
trainers (``trainers``) with their log-probs (``logps``), label-mixing sampler (``sampler``) and
whole-set evaluation (``evaluation``), CPU multi-process launches (``launch``), checks of the
prepared data (``data_checks``), the checkpoint to resume from (``checkpoints``), chat rendering
(``chat``), and every private axolotl/TRL name the package uses (``compat``)."""
