"""Semantic subspaces: the paper's concept keyword lists and membership rules.

A latent belongs to concept c when one of its top-activating examples is a
keyword of c: its top token is the keyword and the keyword appears as a word
of the example's context window ([pos-2, pos+2)).

* ``compat=True`` — the authors' ``find_indices_with_keyword_bySeqs``: all
  top-k examples (zero-valued ones included), top token with spaces removed
  and lower-cased equals ``w.lower()``, and ``w.lower()`` equals a
  whitespace-separated word of the window after removing ``. , ? !`` and the
  literal ``\\n``. The window comparison is case-insensitive here: with a
  case-sensitive one no capitalised keyword (month names, countries) could
  ever match, yet the paper reports those concepts with 30+ members.
* default (corrected) — only examples where the latent fires; tokens are
  normalised (:func:`saesim.compare.filters.normalise_token`) and window words are
  stripped of all punctuation; members are returned sorted (the authors'
  came out of a Python ``set``, in arbitrary order).

References
----------
Lan et al., arXiv:2410.06981, Sec. 4.2 and App. A.11 (keyword lists).
"""

from __future__ import annotations

import re
import string
from functools import lru_cache

import numpy as np

from saesim.compare.filters import TopTokens, normalise_token

__all__ = ["CONCEPTS", "CONTROL_CONCEPT", "members", "concept_members"]

CONCEPTS: dict[str, tuple[str, ...]] = {
    "Time": (
        "day", "night", "week", "month", "year", "hour", "minute", "second", "now", "soon", "later", "early",
        "late", "morning", "evening", "noon", "midnight", "dawn", "dusk", "past", "present", "future", "before",
        "after", "yesterday", "today", "tomorrow", "next", "previous", "soon", "instant", "era", "age", "decade",
        "century", "millennium", "moment", "pause", "wait", "begin", "start", "end", "finish", "stop", "continue",
        "forever", "constant", "frequent", "occasion", "season", "spring", "summer", "autumn", "fall", "winter",
        "anniversary", "deadline", "schedule", "calendar", "clock", "duration", "interval", "epoch", "generation",
        "period", "cycle", "timespan", "shift", "quarter", "term", "phase", "lifetime", "century", "minute",
        "timeline", "delay", "prompt", "timely", "recurrent", "daily", "weekly", "monthly", "yearly", "annual",
        "biweekly", "timeframe",
    ),
    "Calendar": (
        "day", "night", "week", "month", "year", "hour", "minute", "second", "morning", "evening", "noon",
        "midnight", "dawn", "dusk", "yesterday", "today", "tomorrow", "decade", "century", "millennium", "season",
        "spring", "summer", "autumn", "fall", "winter", "calendar", "clock", "century", "minute", "daily",
        "weekly", "monthly", "yearly", "annual", "biweekly", "timeframe",
    ),
    "People/Roles": (
        "man", "girl", "boy", "kid", "dad", "mom", "son", "sis", "bro", "chief", "priest", "king", "queen", "duke",
        "lord", "friend", "clerk", "coach", "nurse", "doc", "maid", "clown", "guest", "peer", "punk", "nerd",
        "jock", "chief",
    ),
    "Nature": (
        "tree", "grass", "stone", "rock", "cliff", "hill", "dirt", "sand", "mud", "wind", "storm", "rain", "cloud",
        "sun", "moon", "leaf", "branch", "twig", "root", "bark", "seed", "tide", "lake", "pond", "creek", "sea",
        "wood", "field", "shore", "snow", "ice", "flame", "fire", "fog", "dew", "hail", "sky", "earth", "glade",
        "cave", "peak", "ridge", "dust", "air", "mist", "heat",
    ),
    "Emotions": (
        "joy", "glee", "pride", "grief", "fear", "hope", "love", "hate", "pain", "shame", "bliss", "rage", "calm",
        "shock", "dread", "guilt", "peace", "trust", "scorn", "doubt", "hurt", "wrath", "laugh", "cry", "smile",
        "frown", "gasp", "blush", "sigh", "grin", "woe", "spite", "envy", "glow", "thrill", "mirth", "bored",
        "cheer", "charm", "grace", "shy", "brave", "proud", "glad", "mad", "sad", "tense", "free", "kind",
    ),
    "MonthNames": (
        "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
        "November", "December",
    ),
    "Countries": (
        "USA", "Canada", "Brazil", "Mexico", "Germany", "France", "Italy", "Spain", "UK", "Australia", "China",
        "Japan", "India", "Russia", "Korea", "Argentina", "Egypt", "Iran", "Turkey",
    ),
    "Biology": (
        "gene", "DNA", "RNA", "virus", "bacteria", "fungus", "brain", "lung", "blood", "bone", "skin", "muscle",
        "nerve", "vein", "organ", "evolve", "enzyme", "protein", "lipid", "membrane", "antibody", "antigen",
        "ligand", "substrate", "receptor", "cell", "chromosome", "nucleus", "cytoplasm",
    ),
}
"""The eight concept keyword lists, verbatim (duplicates as in the authors' source)."""

CONTROL_CONCEPT: tuple[str, ...] = (
    "the", "of", "and", "to", "in", "was", "is", "for", "on", "as", "with", "by", "at", "from", "his", "that",
    "it", "an", "were", "which",
)
"""An unrelated-keyword control: frequent function words that name no concept."""

_AUTHORS_STRIP = re.compile(r"[.,?!]|\\n")
_PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")


def members(top: TopTokens, windows: np.ndarray, keywords, *, compat: bool = False) -> np.ndarray:
    """Latents whose top examples contain one of ``keywords`` (sorted int64 indices).

    Parameters
    ----------
    top : TopTokens
        Top tokens of every latent (k examples each).
    windows : ndarray of str, shape (n_latents, k)
        The context window of each example, as built by :mod:`saesim.extract.tokens`.
    keywords : iterable of str
        A concept's keyword list.
    compat : bool, default False
        The authors' rule (see module notes).
    """
    windows = np.asarray(windows, dtype=object)
    if windows.shape != top.strings.shape:
        raise ValueError(
            f"`windows` has shape {windows.shape} but the top tokens have {top.strings.shape}; build both from "
            "the same top activations."
        )
    wanted = {str(w).lower() for w in keywords}
    if not wanted:
        raise ValueError("`keywords` is empty; give at least one keyword.")
    found = []
    for latent in range(top.n_latents):
        for slot in range(top.strings.shape[1]):
            if not compat and not (top.active[latent, slot] and top.ids[latent, slot] >= 0):
                continue
            token = top.strings[latent, slot]
            token_key = token.replace(" ", "").lower() if compat else normalise_token(token)
            # Only a keyword token needs its window's words (the costly part).
            if token_key in wanted and token_key in _window_words(windows[latent, slot], compat):
                found.append(latent)
                break
    return np.asarray(found, dtype=np.int64)


@lru_cache(maxsize=2**15)
def _window_words(window: str, compat: bool) -> frozenset[str]:
    """The words of a context window, as the authors' rule or the corrected rule reads them."""
    if compat:
        return frozenset(w.lower() for w in _AUTHORS_STRIP.sub("", window).split())
    return frozenset(normalise_token(w) for w in _PUNCTUATION.sub(" ", window.replace("\\n", " ")).split())


def concept_members(top: TopTokens, windows: np.ndarray, *, compat: bool = False, concepts=None) -> dict:
    """Members of every concept (default: the paper's eight plus the control)."""
    concepts = dict(CONCEPTS, Control=CONTROL_CONCEPT) if concepts is None else concepts
    return {name: members(top, windows, words, compat=compat) for name, words in concepts.items()}
