"""Load an SAE named by a profile's SAE spec from disk or the hub, checking its files first.

:func:`load_sae` resolves a spec's location (a local folder, a hub repo or a
SAELens release) and loads it through the libraries' own loaders;
:func:`saved_sae_problem` and :func:`sae_folder_ready` check an SAE folder's
integrity (manifest, truncated safetensors) and remove a damaged folder that
saesim wrote itself, so that it is rebuilt. The public names are re-exported
by :mod:`saesim.extract.saes`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path

from saesim.extract._integrity import (
    MANIFEST,
    is_safetensors_error,
    manifest_problem,
    safetensors_files_problem,
)
from saesim.extract._sae_formats import import_sparsify, weights_from_saelens, weights_from_sparsify
from saesim.extract._sae_weights import HubUnavailableError, SaeCorruptError, SaeMismatchError, SaeWeights

__all__ = ["load_sae", "sae_folder_ready", "saved_sae_problem"]

# The public module's name, so that logging configured for it keeps applying.
logger = logging.getLogger("saesim.extract.saes")


def _fill(template, layer) -> str:
    return "" if template is None else str(template).replace("{layer}", str(int(layer)))


def _local_dir(location: str, root: Path) -> Path | None:
    """The local folder ``location`` names (absolute, or relative to ``root``), if it exists."""
    if not location:
        return None
    path = Path(os.path.expanduser(str(location)))
    candidates = [path] if path.is_absolute() else [Path(root) / path, path]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return None


def _looks_local(location: str) -> bool:
    text = str(location)
    return text.startswith(("/", ".", "~")) or os.sep + os.sep in text


def _is_hub_error(exc: BaseException) -> bool:
    if isinstance(exc, (OSError, ConnectionError, TimeoutError)):
        return True
    module = type(exc).__module__ or ""
    return module.startswith(("huggingface_hub", "httpx", "requests", "urllib3"))


def _hub_error(what: str, exc: BaseException) -> HubUnavailableError:
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false", "False")
    hint = (
        "HF_HUB_OFFLINE is set, so nothing is downloaded: unset it on a machine with network access, "
        if offline
        else "check the network / proxy and your Hugging Face token, "
    )
    return HubUnavailableError(
        f"Could not load {what} from the Hugging Face hub ({type(exc).__name__}: {exc}). This profile needs "
        f"the hub: {hint}or download the SAE once into the HF cache, or use the `offline` / `tiny` profile, "
        "which need no network."
    )


def load_sae(spec, layer: int, *, root: str | os.PathLike = ".") -> SaeWeights:
    """Load the SAE that ``spec`` names for ``layer``, through the real library loaders.

    Parameters
    ----------
    spec : saesim.config.SaeSpec (duck-typed)
        Needs ``source`` ("sparsify", "saelens" or "train"), ``location``
        (hub repo / SAELens release / local folder), ``sae_id`` and ``hook``
        (templates with ``{layer}``); ``num_latents`` / ``k`` are checked
        when set.
    layer : int
        Substituted for ``{layer}``.
    root : path, default "."
        Folder that relative local locations are resolved against (the
        profile's output / cache folder, where trained SAEs are saved).

    Returns
    -------
    SaeWeights

    Raises
    ------
    FileNotFoundError
        A local SAE folder (or a not yet trained ``source="train"`` SAE) is missing.
    SaeCorruptError
        A local SAE's files are damaged (see :func:`saved_sae_problem`). A
        folder saesim wrote itself is removed first (logged warning), so the
        next run rebuilds it; for other folders the message names the file
        and the fix.
    HubUnavailableError
        The SAE must come from the hub and the hub cannot be reached.
    SaeFormatError
        The SAE is of an unsupported kind.
    SaeMismatchError
        ``spec.num_latents`` / ``spec.k`` are set and differ from the SAE's.

    Notes
    -----
    * ``sparsify`` / ``train``: ``<location>/<sae_id>`` on disk via
      ``sparsify.Sae.load_from_disk``, else ``Sae.load_from_hub(location,
      hookpoint=sae_id)``.
    * ``saelens``: ``<location>/<sae_id>`` on disk via ``SAE.load_from_disk``,
      else ``SAE.from_pretrained(release=location, sae_id=sae_id)``.
    """
    source = getattr(spec, "source", None)
    location = str(getattr(spec, "location", "") or "")
    sae_id = _fill(getattr(spec, "sae_id", ""), layer)
    hook = _fill(getattr(spec, "hook", None), layer) or None
    root = Path(root)
    if source not in ("sparsify", "saelens", "train"):
        raise ValueError(f"`spec.source` must be 'sparsify', 'saelens' or 'train'; got {source!r}.")
    local = _local_dir(location, root)
    if local is None and (source == "train" or _looks_local(location)):
        hint = (
            " It is trained by saesim: run `saesim extract --profile ...` (or train_topk_sae + save_sparsify) first."
            if source == "train"
            else ""
        )
        raise FileNotFoundError(
            f"SAE folder `{location}` (for `{sae_id}`) does not exist (looked in {root / location} and "
            f"{Path(location).resolve()}).{hint}"
        )
    if source in ("sparsify", "train"):
        sparsify = import_sparsify()
        if local is not None:
            folder = _sae_folder(local, sae_id, "cfg.json", "sae.safetensors")
            _verify_local_sae(folder)
            with _damaged_files_are_errors(folder):
                sae = sparsify.Sae.load_from_disk(folder, device="cpu")
        else:
            try:
                sae = sparsify.Sae.load_from_hub(location, hookpoint=sae_id or None, device="cpu")
            except Exception as exc:
                if is_safetensors_error(exc):
                    raise _hub_cache_error(f"sparsify SAE `{location}` hookpoint `{sae_id}`", exc) from exc
                if _is_hub_error(exc):
                    raise _hub_error(f"sparsify SAE `{location}` hookpoint `{sae_id}`", exc) from exc
                raise
        weights = weights_from_sparsify(sae, hook=hook, sae_id=sae_id, source=source)
    else:
        from sae_lens import SAE

        if local is not None:
            folder = _sae_folder(local, sae_id, "cfg.json", "sae_weights.safetensors")
            _verify_local_sae(folder)
            with _damaged_files_are_errors(folder):
                sae = SAE.load_from_disk(folder, device="cpu")
        else:
            try:
                sae = SAE.from_pretrained(location, sae_id, device="cpu")
            except Exception as exc:
                if is_safetensors_error(exc):
                    raise _hub_cache_error(f"SAELens release `{location}` id `{sae_id}`", exc) from exc
                if _is_hub_error(exc):
                    raise _hub_error(f"SAELens release `{location}` id `{sae_id}`", exc) from exc
                raise
            if isinstance(sae, tuple):  # sae_lens < 6 returned (sae, cfg, sparsity)
                sae = sae[0]
        weights = weights_from_saelens(sae, hook=hook, sae_id=sae_id, source=source)
    _check_spec_sizes(spec, weights)
    logger.info(
        "loaded %s SAE %s (%d -> %d, %s) for hook %s",
        source, sae_id or location, weights.d_in, weights.n_latents, weights.activation, weights.hook,
    )
    return weights


def _saesim_made(folder: Path) -> bool:
    return (folder / MANIFEST).is_file() or (folder / "saesim_train.json").is_file()


def saved_sae_problem(folder: str | os.PathLike) -> str | None:
    """What is wrong with the SAE files in ``folder``, or None when they check out.

    A folder saesim wrote (:func:`save_sparsify`, :func:`save_saelens`) carries
    a manifest: each file must exist with its recorded size, and a file whose
    mtime changed must still match its recorded sha256. Every
    ``*.safetensors`` file must have a well-formed header whose tensors end
    exactly at the end of the file (catches truncation). Cheap: the weights
    are not read unless an mtime changed.

    Parameters
    ----------
    folder : path
        One SAE's folder (``cfg.json`` + ``sae.safetensors`` or
        ``sae_weights.safetensors``).

    Returns
    -------
    str or None
        A description naming the damaged file, or None.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return f"`{folder}` does not exist"
    if (folder / MANIFEST).is_file():
        return manifest_problem(folder)
    if not any(folder.glob("*.safetensors")):
        return f"`{folder}` holds no .safetensors file"
    return safetensors_files_problem(folder)


def sae_folder_ready(folder: str | os.PathLike) -> bool:
    """Whether a saesim-made SAE folder is complete and intact; a damaged one is removed.

    For code that builds SAEs on demand (trained or tiny SAEs): call this
    instead of checking that the files exist, and rebuild when it returns
    False.

    Returns
    -------
    bool
        True: the folder checks out (:func:`saved_sae_problem`). False: it is
        missing, or it was damaged and has been removed (a warning is logged).

    Raises
    ------
    SaeCorruptError
        The folder is damaged and was not written by saesim (it is left alone).
    """
    folder = Path(folder)
    if not folder.exists():
        return False
    problem = saved_sae_problem(folder)
    if problem is None:
        return True
    _discard_or_raise(folder, problem)
    return False


def _discard_or_raise(folder: Path, problem: str, *, rebuild_now: bool = True) -> None:
    if _saesim_made(folder):
        logger.warning("SAE folder %s written by saesim is damaged (%s); removed it to rebuild it.", folder, problem)
        shutil.rmtree(folder, ignore_errors=True)
        if rebuild_now:
            return
        raise SaeCorruptError(
            f"The SAE in `{folder}` was written by saesim and is damaged: {problem}. It has been removed; run the "
            "same command again (e.g. `saesim run` / `saesim extract`) to rebuild it.",
            path=folder, saesim_made=True,
        )
    raise SaeCorruptError(
        f"The SAE in `{folder}` is damaged: {problem}. saesim did not write it, so it is left alone: download or "
        "save it again (sparsify `save_to_disk`, SAELens `save_model`, or `saesim.extract.saes.save_sparsify`), or point "
        "the profile's `sae.location` at an intact copy.",
        path=folder, saesim_made=False,
    )


def _verify_local_sae(folder: Path) -> None:
    problem = saved_sae_problem(folder)
    if problem is not None:
        _discard_or_raise(folder, problem, rebuild_now=False)


@contextlib.contextmanager
def _damaged_files_are_errors(folder: Path):
    """Turn the library's SafetensorError (a damaged file the checks missed) into SaeCorruptError."""
    try:
        yield
    except Exception as exc:
        if is_safetensors_error(exc):
            _discard_or_raise(folder, f"the library could not read it ({type(exc).__name__}: {exc})",
                              rebuild_now=False)
        raise


def _hub_cache_error(what: str, exc: BaseException) -> SaeCorruptError:
    return SaeCorruptError(
        f"{what} is damaged in the local Hugging Face cache ({type(exc).__name__}: {exc}). Delete its cached "
        "copy (`huggingface-cli delete-cache`, or remove the repo's folder under ~/.cache/huggingface/hub) and "
        "run again with network access to download it anew.",
        path=Path(os.environ.get("HF_HUB_CACHE", "~/.cache/huggingface/hub")).expanduser(), saesim_made=False,
    )


def _check_spec_sizes(spec, weights: SaeWeights) -> None:
    """The profile's num_latents / k, when given, must match the loaded SAE."""
    expected_n = getattr(spec, "num_latents", None)
    if expected_n is not None and int(expected_n) != weights.n_latents:
        raise SaeMismatchError(
            f"SAE `{weights.sae_id}` has {weights.n_latents} latents but the profile says num_latents = "
            f"{expected_n}; fix the profile (or set num_latents to null to accept any width)."
        )
    expected_k = getattr(spec, "k", None)
    if expected_k is not None and weights.activation == "topk" and int(expected_k) != weights.k:
        raise SaeMismatchError(
            f"SAE `{weights.sae_id}` is TopK with k = {weights.k} but the profile says k = {expected_k}; "
            "fix the profile (or set k to null)."
        )


def _sae_folder(local: Path, sae_id: str, *needed: str) -> Path:
    for folder in ([local / sae_id] if sae_id else []) + [local]:
        if all((folder / name).is_file() for name in needed):
            return folder
    raise FileNotFoundError(
        f"No SAE files {list(needed)} in {local / sae_id if sae_id else local}; the folder must hold an SAE "
        "saved by the library (sparsify save_to_disk / SAELens save_model), one sub-folder per id."
    )
