"""What ``aot-cli`` runs, callable without it (docs/library.md has a line on each module).

The commands ``validate``, ``convert``, ``report`` and ``smoke`` (a package each); the config
loading they share (``config``); rows of a dataset source (``records``); whether saved weights
load (``saved_models``); the tiny local model and bundled data the demo and tests train on
(``tiny_model``, ``synthetic``).
"""
