"""The software the run depends on: versions, CUDA, and whether GPU-only packages import."""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

from axolotl_aot.tools.smoke.rows import Row, failed, not_run, ok


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _imports(module: str) -> str | None:
    """None if ``module`` imports, else the first line of the error (a flash-attn built for another CUDA)."""
    try:
        import_module(module)
    except Exception as err:  # any import failure is what the real run would hit
        return (str(err) or type(err).__name__).splitlines()[0]
    return None


def environment_rows(*, needs_flash: bool, needs_deepspeed: bool) -> list[Row]:
    import torch

    cuda = torch.cuda.is_available()
    rows = [ok("torch", torch.__version__)]
    if cuda:
        names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
        rows.append(
            ok("CUDA", f"{torch.version.cuda}, {torch.cuda.device_count()} GPU(s): {', '.join(names)}")
        )
    else:
        rows.append(
            not_run("CUDA", "no CUDA device on this machine: the GPU-only settings below are not run")
        )
    rows += [ok(name, _version(name) or "?") for name in ("axolotl", "trl", "transformers")]
    rows.append(
        _optional("flash-attn", "flash_attn", needs_flash, cuda, 'pip install "axolotl-aot[flash-attn]"')
    )
    bnb = _version("bitsandbytes")
    if bnb:
        from bitsandbytes.cextension import BNB_BACKEND

        rows.append(ok("bitsandbytes", f"{bnb}, {BNB_BACKEND} backend"))
    else:
        rows.append(not_run("bitsandbytes", "not installed"))
    rows.append(_optional("deepspeed", "deepspeed", needs_deepspeed, cuda, "pip install deepspeed"))
    return rows


def _optional(name: str, module: str, needed: bool, cuda: bool, fix: str) -> Row:
    installed = _version(name)
    if not needed:
        return ok(name, f"{installed or 'not installed'} (the config does not use it)")
    if not cuda:
        return not_run(name, f"{installed or 'not installed'}; the config needs it on a CUDA machine ({fix})")
    if installed is None:
        return failed(name, f"the config needs it and it is not installed: {fix}")
    error = _imports(module)
    if error:
        return failed(name, f"{installed} does not import ({error}): reinstall it for this torch and CUDA")
    return ok(name, installed)
