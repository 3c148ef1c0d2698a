"""What ``aot-cli`` runs, callable without it: ``validate``, ``convert`` (with ``records`` for
reading and writing rows), ``report``, ``smoke``; the config loading they share (``config``),
and the tiny local model and bundled data the demo and tests train on (``tiny_model``,
``synthetic``)."""
