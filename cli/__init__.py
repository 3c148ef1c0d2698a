"""``aot-cli``: the command-line shell over ``axolotl_aot`` (imported as ``axolotl_aot_cli``)."""
