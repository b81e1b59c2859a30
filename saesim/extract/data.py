"""Texts and token grids: the rows every later stage is aligned on.

Texts come from a real corpus (:func:`load_texts`) and are tokenized once into
a :class:`TokenGrid`: an (N, S) grid of token ids with its attention mask and
the positions that enter the analysis (``keep``). Row ``t`` of model A's codes
and row ``t`` of model B's codes must be the same token of the same text: each
model tokenises with its own tokenizer, and
:func:`saesim.extract.align.align_grids` keeps the positions whose character
span is a token of every model. The aligned grid carries one view per
tokenizer (:meth:`TokenGrid.for_tokenizer`); its hash covers all of them.

Corpora
-------
``"wikitext2"`` (default)
    WikiText-2 raw, validation then test split (Merity et al. 2016), from the
    data folder (:func:`data_dir`). Articles split at `` = Title = `` lines;
    headings and blank lines are dropped; WikiText's ``@-@`` / ``@,@`` /
    ``@.@`` markers and the spaces around punctuation are undone. Licence:
    CC BY-SA 3.0 / GFDL (Wikipedia).
``"brown"``
    The Brown Corpus (Francis & Kučera 1964/1979) from
    ``nltk_data/corpora/brown.zip``, read with :mod:`zipfile`; POS tags
    dropped. **Licence: non-commercial use only** (NLTK index); anything that
    ships or cites results on it must say so.
``"openwebtext"``
    ``Skylion007/openwebtext`` (train split, streamed) from the Hugging Face
    hub: the first ``n_docs`` documents, as the paper. Fails fast offline.
``"texts"``
    An explicit list of documents (tests, notebooks).

Positions dropped by default: padding, and special tokens such as BOS,
``[CLS]`` and ``[SEP]`` (authors_pipeline.md §4 item 7). ``compat=True``
keeps every position, padding included, as the authors' code did.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from saesim.errors import HubUnavailableError  # noqa: F401 - raised here, one class for all layers
from saesim.config import DataSpec
from saesim.validation import check_positive_int

__all__ = [
    "DataNotFoundError",
    "HubUnavailableError",
    "TokenGrid",
    "TokenizerMismatchError",
    "corpus_documents",
    "data_dir",
    "load_texts",
    "require_hub",
    "tokenize",
    "tokenizer_name",
]

logger = logging.getLogger(__name__)

DATA_ENV = "SAESIM_DATA"
"""Environment variable naming the folder that holds the local corpora."""

WIKITEXT_FILES = ("wikitext-2-raw/wiki.valid.raw", "wikitext-2-raw/wiki.test.raw")
BROWN_ZIP = "nltk_data/corpora/brown.zip"
OPENWEBTEXT = "Skylion007/openwebtext"

BROWN_LICENCE = (
    "Brown Corpus (Francis & Kučera): 'May be used for non-commercial purposes' (NLTK index); "
    "commercial use is not cleared. Use corpus 'wikitext2' (CC BY-SA 3.0) for a permissive licence."
)
"""Licence note repeated wherever the Brown corpus is used."""

HUB_HOST_TIMEOUT = 3.0
"""Seconds to wait for the hub before declaring it unreachable."""


class DataNotFoundError(FileNotFoundError):
    """The local corpus folder (``$SAESIM_DATA``) or one of its files is missing."""



class TokenizerMismatchError(ValueError):
    """Two models' tokenizers segment the same text differently."""


# --------------------------------------------------------------------------- locations


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """The folder holding the local corpora.

    Resolution order: ``override`` (``DataSpec.data_dir``), the environment
    variable ``SAESIM_DATA``, then ``../shared/data`` beside the repository
    when it exists.

    Raises
    ------
    DataNotFoundError
        None of those exists; the message says what to set.
    """
    if override is not None:
        path = Path(override).expanduser()
        if not path.is_dir():
            raise DataNotFoundError(
                f"`data_dir` {str(path)!r} is not a folder; point it at the folder holding "
                "wikitext-2-raw/ and nltk_data/ (or unset it to use ${DATA_ENV})."
            )
        return path
    env = os.environ.get(DATA_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise DataNotFoundError(
                f"${DATA_ENV}={env!r} is not a folder; set {DATA_ENV} to the folder holding "
                "wikitext-2-raw/ and nltk_data/ (the project's shared/data)."
            )
        return path
    default = _default_data_dir()
    if default.is_dir():
        return default
    raise DataNotFoundError(
        f"no local corpus found: ${DATA_ENV} is not set and {default} does not exist. "
        f"Set {DATA_ENV}=/path/to/shared/data (the folder with wikitext-2-raw/ and nltk_data/), "
        "or use a profile whose data.corpus is 'texts' or 'openwebtext'."
    )


def _default_data_dir() -> Path:
    """``../shared/data`` relative to the repository root (the project's layout)."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def require_hub(what: str) -> None:
    """Fail fast when ``what`` needs the Hugging Face hub and it cannot be used.

    Checks the offline switches (``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``,
    ``HF_DATASETS_OFFLINE``) and then whether the hub host answers within
    :data:`HUB_HOST_TIMEOUT` seconds.

    Raises
    ------
    HubUnavailableError
        With ``what`` and the way out (unset the switch, or use the offline profile).
    """
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            raise HubUnavailableError(
                f"{what} needs the Hugging Face hub, but {var}={os.environ[var]} is set. Unset {var} "
                "on a machine with network access (and log in for gated models), or use the "
                "`offline` or `tiny` profile."
            )
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (443 if parsed.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=HUB_HOST_TIMEOUT):
            pass
    except OSError as exc:
        raise HubUnavailableError(
            f"{what} needs the Hugging Face hub, but {host}:{port} cannot be reached ({exc}). "
            "Run it on a machine with network access, or use the `offline` or `tiny` profile."
        ) from exc


# --------------------------------------------------------------------------- texts


def load_texts(spec: DataSpec) -> list[str]:
    """The first ``spec.n_docs`` documents of ``spec.corpus``, in a fixed order.

    Parameters
    ----------
    spec : DataSpec
        Corpus, number of documents, document unit and data folder.

    Returns
    -------
    list of str
        Exactly ``spec.n_docs`` non-empty documents.

    Raises
    ------
    DataNotFoundError
        The local corpus is missing.
    HubUnavailableError
        ``openwebtext`` while offline.
    ValueError
        The corpus holds fewer than ``n_docs`` documents.
    """
    if spec.corpus == "texts":
        docs = [t for t in spec.texts if t.strip()]
    elif spec.corpus == "wikitext2":
        docs = _wikitext_docs(_wikitext_lines(spec.data_dir), unit=spec.unit, min_words=spec.min_words,
                              limit=spec.n_docs)
    elif spec.corpus == "brown":
        docs = _brown_docs(data_dir(spec.data_dir), unit=spec.unit, min_words=spec.min_words, limit=spec.n_docs)
    elif spec.corpus == "openwebtext":
        docs = _openwebtext_docs(spec.n_docs)
    else:  # pragma: no cover - DataSpec validates the choice
        raise ValueError(f"`corpus` {spec.corpus!r} is unknown.")
    if len(docs) < spec.n_docs:
        raise ValueError(
            f"`n_docs`={spec.n_docs} but corpus {spec.corpus!r} holds only {len(docs)} documents "
            f"(unit={spec.unit!r}, min_words={spec.min_words}); lower `n_docs`"
            + (" or use unit='paragraph'." if spec.unit == "article" else " or lower `min_words`.")
        )
    return docs[: spec.n_docs]


def corpus_documents(corpus: str, *, unit: str = "paragraph", min_words: int = 8, override=None) -> list[str]:
    """Every document of a local corpus (``"wikitext2"`` or ``"brown"``), in the fixed order :func:`load_texts` reads.

    ``override`` is the data folder (``DataSpec.data_dir``; None: :func:`data_dir`'s default).

    Raises
    ------
    DataNotFoundError
        The corpus is missing from the data folder.
    """
    if corpus == "wikitext2":
        return _wikitext_docs(_wikitext_lines(override), unit=unit, min_words=min_words, limit=10**9)
    if corpus == "brown":
        return _brown_docs(data_dir(override), unit=unit, min_words=min_words, limit=10**9)
    raise ValueError(f"`corpus` must be 'wikitext2' or 'brown' (the local corpora); got {corpus!r}.")


_WIKI_ARTICLE = re.compile(r"^ = [^=].* = $")
_WIKI_HEADING = re.compile(r"^ (= )+.*( =)+ $")


WIKITEXT_HUB = ("Salesforce/wikitext", "wikitext-2-raw-v1")
"""The same raw WikiText-2 on the Hugging Face hub (dataset, config), used when no local copy is found."""


def _wikitext_lines(override=None) -> list[list[str]]:
    """The lines of WikiText-2 raw validation and test: from the data folder, else from the hub.

    The hub is tried only when no local folder is configured at all (no
    ``data_dir``, no ``$SAESIM_DATA``, no ``../shared/data``); offline the
    error still says what to set.
    """
    try:
        root = data_dir(override)
    except DataNotFoundError as missing:
        if override is not None or os.environ.get(DATA_ENV):
            raise
        try:
            require_hub("WikiText-2 without a local copy")
        except HubUnavailableError as offline:
            raise DataNotFoundError(f"{missing} (Without it, WikiText-2 comes from the Hugging Face hub "
                                    f"{WIKITEXT_HUB[0]}, but: {offline})") from missing
        return _wikitext_hub_lines(*WIKITEXT_HUB)
    files = []
    for name in WIKITEXT_FILES:
        path = root / name
        if not path.is_file():
            raise DataNotFoundError(
                f"WikiText-2 file {path} is missing; ${DATA_ENV} must point at the folder holding "
                "wikitext-2-raw/wiki.valid.raw and wiki.test.raw."
            )
        files.append(path.read_text(encoding="utf-8").split("\n"))
    return files


def _wikitext_hub_lines(path: str, name: str | None = None, *, data_files=None) -> list[list[str]]:
    """Validation and test lines of ``datasets.load_dataset(path, name)`` (one row per line of the raw files)."""
    from datasets import load_dataset

    try:
        dataset = load_dataset(path, name, data_files=data_files)
    except Exception as exc:  # noqa: BLE001 - network and hub failures get one message
        raise HubUnavailableError(f"WikiText-2 could not be loaded from {path} ({type(exc).__name__}: {exc}); "
                                  f"set {DATA_ENV} to a folder holding wikitext-2-raw/ instead.") from exc
    return [[str(text).rstrip("\n") for text in dataset[split]["text"]] for split in ("validation", "test")]


def _wikitext_docs(files: list[list[str]], *, unit: str, min_words: int, limit: int) -> list[str]:
    docs: list[str] = []
    for lines in files:
        article: list[str] = []
        for line in lines:
            if _WIKI_ARTICLE.match(line):
                if unit == "article" and article:
                    docs.append(" ".join(article))
                article = []
                continue
            if not line.strip() or _WIKI_HEADING.match(line):
                continue
            text = detokenise_wikitext(line)
            if len(text.split()) < min_words:
                continue
            if unit == "paragraph":
                docs.append(text)
            else:
                article.append(text)
            if len(docs) >= limit:
                return docs
        if unit == "article" and article:
            docs.append(" ".join(article))
        if len(docs) >= limit:
            return docs
    return docs


_SPACE_BEFORE = re.compile(r" ([,.;:!?%)\]}]|'s\b|'t\b|n't\b|'re\b|'ve\b|'ll\b|'d\b|'m\b)")
_SPACE_AFTER = re.compile(r"([(\[{$]) ")


def detokenise_wikitext(line: str) -> str:
    """Undo WikiText's tokenisation (``3 @.@ 1`` → ``3.1``, ``word , word`` → ``word, word``)."""
    text = line.strip()
    text = text.replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".")
    text = _SPACE_BEFORE.sub(r"\1", text)
    text = _SPACE_AFTER.sub(r"\1", text)
    return re.sub(r"\s+", " ", text).strip()


def _brown_docs(root: Path, *, unit: str, min_words: int, limit: int) -> list[str]:
    path = root / BROWN_ZIP
    if not path.is_file():
        raise DataNotFoundError(
            f"Brown corpus {path} is missing; ${DATA_ENV} must point at the folder holding "
            f"{BROWN_ZIP}. ({BROWN_LICENCE})"
        )
    logger.info("reading the Brown corpus: %s", BROWN_LICENCE)
    docs: list[str] = []
    with zipfile.ZipFile(path) as archive:
        members = sorted(n for n in archive.namelist() if re.fullmatch(r"brown/c[a-r]\d\d", n))
        for member in members:
            raw = archive.read(member).decode("utf-8", errors="replace")
            paragraphs = []
            for block in re.split(r"\n\s*\n", raw):
                words = [tok.rsplit("/", 1)[0] for tok in block.split() if tok]
                if not words:
                    continue
                text = _detokenise_brown(words)
                if len(text.split()) >= min_words:
                    paragraphs.append(text)
            if unit == "paragraph":
                docs.extend(paragraphs)
            elif paragraphs:
                docs.append(" ".join(paragraphs))
            if len(docs) >= limit:
                break
    return docs


def _detokenise_brown(words: list[str]) -> str:
    text = " ".join(words).replace("``", '"').replace("''", '"')
    text = _SPACE_BEFORE.sub(r"\1", text)
    text = _SPACE_AFTER.sub(r"\1", text)
    return re.sub(r"\s+", " ", text).strip()


def _openwebtext_docs(n_docs: int) -> list[str]:
    require_hub(f"corpus 'openwebtext' ({OPENWEBTEXT})")
    try:
        import datasets

        stream = datasets.load_dataset(OPENWEBTEXT, split="train", streaming=True)
        docs = []
        for row in stream:
            docs.append(row["text"])
            if len(docs) >= n_docs:
                break
    except Exception as exc:  # noqa: BLE001 - any hub/dataset failure gets one clear message
        raise HubUnavailableError(
            f"could not stream {OPENWEBTEXT} from the Hugging Face hub ({type(exc).__name__}: {exc}). "
            "Check the network and the `datasets` version, or use corpus 'wikitext2'."
        ) from exc
    return docs


# --------------------------------------------------------------------------- grid


@dataclass(frozen=True, eq=False)
class TokenGrid:
    """Token ids of N documents padded to S positions, and the positions kept.

    Attributes
    ----------
    ids : ndarray of int64, shape (N, S)
    attention_mask : ndarray of int64, shape (N, S)
        1 for real tokens, 0 for padding.
    keep : ndarray of bool, shape (N, S)
        Positions that enter the analysis: real, non-special tokens by
        default; every position under ``compat``.
    tokenizer : str
        Name (``name_or_path``) of the tokenizer that made the grid.
    special_ids : tuple of int
        The tokenizer's special token ids.
    compat : bool
        Whether the grid keeps every position (the authors' behaviour).
    others : tuple of TokenGrid
        The same texts tokenised by the other models' tokenizers, with their
        kept positions paired in order with this grid's (same ``n_tokens``,
        same documents; see :func:`saesim.extract.align.align_grids`). Empty when every model
        shares this grid's tokenizer.
    hash : str
        sha256 of ids, mask, keep and the tokenizer name (hex), and of every
        view in ``others``.
    """

    ids: np.ndarray
    attention_mask: np.ndarray
    keep: np.ndarray
    tokenizer: str
    special_ids: tuple[int, ...] = ()
    compat: bool = False
    hash: str = ""
    others: tuple["TokenGrid", ...] = ()

    def __post_init__(self):
        ids = np.ascontiguousarray(self.ids, dtype=np.int64)
        mask = np.ascontiguousarray(self.attention_mask, dtype=np.int64)
        keep = np.ascontiguousarray(self.keep, dtype=bool)
        if ids.ndim != 2 or mask.shape != ids.shape or keep.shape != ids.shape:
            raise ValueError(
                f"`ids`, `attention_mask` and `keep` must be 2-D arrays of one shape; got "
                f"{ids.shape}, {mask.shape}, {keep.shape}."
            )
        for name, arr in (("ids", ids), ("attention_mask", mask), ("keep", keep)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "special_ids", tuple(int(i) for i in self.special_ids))
        others = tuple(self.others)
        for other in others:
            if other.others:
                raise ValueError("a view in `others` must not carry views of its own.")
            if other.n_tokens != int(keep.sum()) or other.n_docs != ids.shape[0]:
                raise ValueError(
                    f"the view of tokenizer {other.tokenizer} keeps {other.n_tokens} tokens of {other.n_docs} "
                    f"documents but the grid keeps {int(keep.sum())} of {ids.shape[0]}; build views with "
                    "`saesim.extract.align.align_grids`."
                )
        object.__setattr__(self, "others", others)
        digest = _grid_hash(ids, mask, keep, self.tokenizer)
        if others:
            digest = hashlib.sha256("|".join([digest, *(o.hash for o in others)]).encode()).hexdigest()
        object.__setattr__(self, "hash", digest)

    def __eq__(self, other):
        return isinstance(other, TokenGrid) and self.hash == other.hash

    def __hash__(self):
        return hash(self.hash)

    @property
    def shape(self) -> tuple[int, int]:
        """(N documents, S positions)."""
        return self.ids.shape

    @property
    def n_docs(self) -> int:
        return self.ids.shape[0]

    @property
    def n_tokens(self) -> int:
        """Number of kept positions (rows of every activation/code matrix)."""
        return int(self.keep.sum())

    @property
    def n_positions(self) -> int:
        """N x S, padding included."""
        return int(self.ids.size)

    @property
    def masked_fraction(self) -> float:
        """Fraction of the grid's positions that are dropped."""
        return 1.0 - self.n_tokens / max(self.n_positions, 1)

    def kept_flat_index(self) -> np.ndarray:
        """Flat indices ``doc * S + pos`` of the kept positions, row-major (the row order of codes)."""
        return np.flatnonzero(self.keep.ravel())

    def kept_ids(self) -> np.ndarray:
        """Token id of every kept row, shape (n_tokens,)."""
        return self.ids.ravel()[self.kept_flat_index()]

    def doc_pos(self, rows) -> tuple[np.ndarray, np.ndarray]:
        """Map kept-row indices to (document, position) arrays.

        Negative rows (the ``-1`` padding of top-k tables) map to (-1, -1).
        """
        rows = np.asarray(rows, dtype=np.int64)
        flat_index = self.kept_flat_index()
        bad = (rows >= flat_index.size)
        if np.any(bad):
            raise IndexError(
                f"`rows` holds {int(rows.max())} but the grid has only {flat_index.size} kept rows; "
                "the rows must come from this grid."
            )
        valid = rows >= 0
        flat = np.where(valid, flat_index[np.where(valid, rows, 0)], -1)
        seq = self.ids.shape[1]
        doc = np.where(valid, flat // seq, -1)
        pos = np.where(valid, flat % seq, -1)
        return doc, pos

    def rows_of_doc(self, doc: int) -> np.ndarray:
        """Kept-row indices belonging to document ``doc``."""
        starts = np.concatenate([[0], np.cumsum(self.keep.sum(axis=1))])
        return np.arange(starts[doc], starts[doc + 1])

    def select_docs(self, n_docs: int) -> "TokenGrid":
        """The grid of the first ``n_docs`` documents (same width), views included."""
        return TokenGrid(
            ids=self.ids[:n_docs], attention_mask=self.attention_mask[:n_docs], keep=self.keep[:n_docs],
            tokenizer=self.tokenizer, special_ids=self.special_ids, compat=self.compat,
            others=tuple(other.select_docs(n_docs) for other in self.others),
        )

    @property
    def tokenizers(self) -> tuple[str, ...]:
        """Names of the tokenizers this grid has a view for (its own first)."""
        return (self.tokenizer, *(other.tokenizer for other in self.others))

    def for_tokenizer(self, tokenizer) -> "TokenGrid":
        """The view of this grid made by ``tokenizer`` (a tokenizer or its :func:`tokenizer_name`).

        Its kept rows are this grid's kept rows, in the same order; its ids,
        mask and special ids are that tokenizer's.

        Raises
        ------
        TokenizerMismatchError
            The grid has no view of that tokenizer.
        """
        name = tokenizer if isinstance(tokenizer, str) else tokenizer_name(tokenizer)
        if name == self.tokenizer:
            return self
        for other in self.others:
            if other.tokenizer == name:
                return other
        raise TokenizerMismatchError(
            f"the token grid has views of {list(self.tokenizers)} but not of tokenizer {name}; rebuild the grid "
            "with every model's tokenizer (`saesim extract` does this for the profile's models)."
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The arrays to store (see :meth:`from_arrays`); view ``i`` under ``view{i}.<name>``."""
        arrays = {"ids": self.ids, "attention_mask": self.attention_mask, "keep": self.keep,
                  "special_ids": np.asarray(self.special_ids, dtype=np.int64)}
        for i, other in enumerate(self.others):
            arrays.update({f"view{i}.{name}": arr for name, arr in other.to_arrays().items()})
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict, *, tokenizer: str, compat: bool,
                    other_tokenizers: tuple[str, ...] = ()) -> "TokenGrid":
        others = tuple(
            cls.from_arrays({name.split(".", 1)[1]: arr for name, arr in arrays.items()
                             if name.startswith(f"view{i}.")}, tokenizer=name, compat=compat)
            for i, name in enumerate(other_tokenizers)
        )
        return cls(ids=arrays["ids"], attention_mask=arrays["attention_mask"], keep=arrays["keep"],
                   tokenizer=tokenizer, special_ids=tuple(np.asarray(arrays.get("special_ids", ())).tolist()),
                   compat=compat, others=others)


def _grid_hash(ids, mask, keep, tokenizer: str) -> str:
    h = hashlib.sha256()
    h.update(f"TokenGrid/v1/{ids.shape[0]}x{ids.shape[1]}/{tokenizer}".encode())
    for arr in (ids, mask, keep.astype(np.uint8)):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def tokenizer_name(tokenizer) -> str:
    """A stable name of a tokenizer, from its content: class, vocabulary size and a digest of the vocabulary.

    The same tokenizer loaded from another folder (a temporary one, another
    cache root) gets the same name, so a cached grid's views stay valid.
    """
    cached = getattr(tokenizer, "_saesim_name", None)
    if cached is not None:
        return cached
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    specials = sorted(str(t) for t in getattr(tokenizer, "all_special_tokens", ()))
    digest = hashlib.sha256(json.dumps([vocab, specials]).encode()).hexdigest()[:12]
    name = f"{type(tokenizer).__name__}[{len(tokenizer)}]:{digest}"
    try:
        tokenizer._saesim_name = name
    except AttributeError:  # pragma: no cover - a tokenizer that refuses attributes
        pass
    return name


def tokenize(tokenizer, texts, *, max_length: int, compat: bool = False) -> TokenGrid:
    """Tokenize ``texts`` into a :class:`TokenGrid`, right-padded to the longest row.

    Parameters
    ----------
    tokenizer : transformers tokenizer
        Must have a pad token (the model loaders set ``pad = eos`` for causal
        models, as the authors did).
    texts : sequence of str
    max_length : int
        Rows are truncated to this many tokens (special tokens included).
    compat : bool, default False
        Keep every position (padding, BOS, CLS/SEP), as the authors' code did.
        By default padding and special tokens are dropped from ``keep``.

    Returns
    -------
    TokenGrid
    """
    texts = list(texts)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError("`texts` must be a non-empty list of strings.")
    check_positive_int(max_length, "max_length")
    if tokenizer.pad_token_id is None:
        raise ValueError(
            f"tokenizer {tokenizer_name(tokenizer)} has no pad token; set `tokenizer.pad_token = "
            "tokenizer.eos_token` (saesim.extract.models.load_model does this for causal models)."
        )
    enc = tokenizer(
        texts, padding="longest", truncation=True, max_length=max_length,
        padding_side="right", return_tensors="np",
    )
    ids = np.asarray(enc["input_ids"], dtype=np.int64)
    mask = np.asarray(enc["attention_mask"], dtype=np.int64)
    special = tuple(sorted({int(i) for i in tokenizer.all_special_ids}))
    if compat:
        keep = np.ones_like(ids, dtype=bool)
    else:
        keep = (mask == 1) & ~np.isin(ids, np.asarray(special, dtype=np.int64))
    return TokenGrid(ids=ids, attention_mask=mask, keep=keep, tokenizer=tokenizer_name(tokenizer),
                     special_ids=special, compat=compat)
