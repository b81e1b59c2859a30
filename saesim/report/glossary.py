"""The book's glossary: one definition of every measure, test, control and pairing rule a page names.

* :func:`entries` — the glossary as :class:`Entry` objects (terms, definition), in reading order.
  The terms of the measures, pairing rules, directions, comparisons and nulls are their labels in
  :mod:`saesim.vocab` (what tables and legends print), so a table's header and its glossary entry
  never spell a name two ways; the SVCCA entry names the run's dimension policy.
* :func:`glossary_markdown` — the page body: a MyST ``glossary`` directive, written by
  ``saesim book`` to ``book/generated/glossary.md`` (included by ``book/glossary.md``).
* :func:`term` and :func:`link` — a term's text and the ``{term}`` role that links to it, for
  the pages' markdown.

Nothing here computes: the definitions describe what :mod:`saesim.compare` computes
(:mod:`saesim.compare.significance` for the tests, :mod:`saesim.compare.match` for the rules).

References
----------
Raghu et al., "SVCCA", NeurIPS 2017. Morcos et al., "Insights on representational similarity
in neural networks with canonical correlation", NeurIPS 2018. Kornblith et al., "Similarity of
neural network representations revisited", ICML 2019. Holm, Scand. J. Stat. 6 (1979).
Benjamini and Hochberg, J. R. Stat. Soc. B 57 (1995). Knijnenburg et al., Bioinformatics 25
(2009).
"""

from __future__ import annotations

from dataclasses import dataclass

from saesim import vocab
from saesim.compare.significance import ALPHA, MIN_EXCEEDANCES
from saesim.report._plot_captions import dims_words

__all__ = [
    "CONCEPTS",
    "Entry",
    "GLOSSARY_DOC",
    "VOCAB_KINDS",
    "entries",
    "glossary_markdown",
    "link",
    "term",
]

GLOSSARY_DOC = "book/glossary"
"""The glossary page's document (its ``{term}`` targets are defined there)."""

VOCAB_KINDS = ("measure", "rule", "direction", "null", "comparison", "steering_map", "recipe")
"""Kinds of :data:`saesim.vocab.TERMS` whose every label is a glossary term."""


@dataclass(frozen=True)
class Entry:
    """One glossary entry.

    Attributes
    ----------
    terms : tuple of str
        The entry's names; the first is its heading, the others link to it too (``"seed control"``
        for ``"two SAEs of model A"``).
    text : str
        The definition, MyST markdown (one paragraph).
    """

    terms: tuple[str, ...]
    text: str


def _vocab_texts(svcca_dims) -> dict[tuple[str, str], tuple[tuple[str, ...], str]]:
    """(kind, key) -> (further terms, definition) of every vocabulary term."""
    return {
        # measures
        ("measure", "svcca"): ((), (
            "Singular-vector canonical correlation analysis (Raghu et al. 2017) of the paired decoder rows: each "
            "side is centred and reduced by SVD to its top $k$ directions, and the score is the mean canonical "
            "correlation of the two reduced sets (0 to 1, blind to rotations). How many directions each side "
            "keeps is the dimension policy, `filters.svcca_dims`: `ratio:R` keeps at most one per R distinct "
            "rows of that side (a many-to-1 hub side counts each partner once), an integer k keeps k, a fraction "
            "keeps that share of the variance. This corrected SVCCA keeps, in this build, "
            f"**{dims_words(svcca_dims)}** (`svcca_dims: {svcca_dims}`); the kept dimensions of each record "
            "are its kept dims (A) and (B). The authors' code keeps one; see "
            f"{link('measure', 'svcca_authors_k')}.")),
        ("measure", "svcca_authors_k"): (("authors' SVCCA",), (
            "SVCCA as the authors' code computes it (`top_k_pca_comps`; `compat=True`): each side keeps a "
            "single principal direction, so the score is the one canonical correlation of the two sides' "
            "top principal components. Shown beside the corrected SVCCA wherever the paper's numbers appear.")),
        ("measure", "pwcca"): ((), (
            "Projection-weighted CCA (Morcos et al. 2018): the canonical correlations weighted by how much of "
            "one side's columns each canonical direction accounts for (the side with fewer kept dimensions), "
            "instead of SVCCA's plain mean; it keeps every dimension unless told otherwise.")),
        ("measure", "rsa"): ((), (
            "Representational similarity analysis: on each side, the Pearson correlation of every two paired "
            "decoder rows (a representational similarity matrix); the score is the Spearman correlation of the "
            "two matrices' upper triangles, as in the authors' code. It needs no dimension policy.")),
        ("measure", "linear_cka"): ((), (
            "Linear centred kernel alignment (Kornblith et al. 2019) of the column-centred paired rows, "
            r"$\|X^\top Y\|_F^2 / (\|X^\top X\|_F\,\|Y^\top Y\|_F)$: 1 when one side is a rotation and "
            "uniform scaling of the other.")),
        ("measure", "procrustes"): ((), (
            "Orthogonal Procrustes similarity: the nuclear norm of $X^\\top Y$ for the column-centred sides "
            "scaled to unit Frobenius norm; 1 when they agree up to a rotation.")),
        # pairing rules (the stored key is what `rule=` takes)
        ("rule", "many_to_one"): ((), (
            "Pairing rule `many_to_one`, the paper's pairing: every chooser (by default each B latent) keeps "
            "its best-correlated partner, so one A latent may be chosen by many B latents (a *hub*). Its null "
            f"is the {link('null', 'group')}.")),
        ("rule", "first_index"): (("1-1",), (
            "Pairing rule `first_index`, the paper's \"1-1\" and the profiles' default: the many-to-1 pairs "
            "de-duplicated greedily, each partner kept with the chooser of lowest index that chose it (what "
            "the authors' code does).")),
        ("rule", "max_corr"): ((), (
            "Pairing rule `max_corr`: the many-to-1 pairs de-duplicated so that each partner keeps the chooser "
            "it correlates with best.")),
        ("rule", "mutual"): ((), (
            "Pairing rule `mutual`: a pair is kept only when each latent is the other's best-correlated "
            "partner.")),
        ("rule", "hungarian"): ((), (
            "Pairing rule `hungarian`: the one-to-one assignment that maximises the total correlation over "
            "every latent's best candidates (a sparse linear assignment, Jonker and Volgenant 1987).")),
        # directions
        ("direction", "b_to_a"): ((), (
            "Direction `b_to_a`, the paper's and the default: each latent of model B chooses its "
            "best-correlated latent of model A (B latents are the choosers).")),
        ("direction", "a_to_b"): ((), (
            "Direction `a_to_b`: each latent of model A chooses its best-correlated latent of model B.")),
        # comparisons
        ("comparison", "full_space"): ((), (
            "The main comparison: model A's SAE latents paired with model B's, every score judged against its "
            "null and read against the controls.")),
        ("comparison", "seed"): (("seed control",), (
            f"The seed control: model A's SAEs against a second SAE set of A that differs by training seed "
            f"only (same width, data and recipe): {vocab.SEED_REFERENCE}, the reference the cross-model score "
            f"is read against, neither a floor nor a ceiling to beat.")),
        ("comparison", "control"): (("re-randomised controls",), (
            "The re-randomised controls put SAEs of a random copy of model A in A's place against B. The "
            "authors' control (this entry) resamples every tensor *except the embeddings and norms* from a "
            "normal distribution with that tensor's mean and standard deviation (their "
            "`rerandomized_model.py`); a cross-model score no higher than its score says the pairing finds "
            f"what the token embeddings alone give. {link('comparison', 'control_all', 'The other control')} "
            "resamples those too.")),
        ("comparison", "control_all"): ((), (
            "The second re-randomised control: every tensor of model A resampled, embeddings and norms "
            "included, so that the difference from the authors' control shows what the token embeddings "
            "alone contribute.")),
        ("comparison", "raw_neuron"): (("raw-neuron baseline",), (
            "The baseline without SAEs: the residual-stream neurons of the two models paired and compared "
            "directly.")),
        # nulls ("shuffled null" is also a comparison's label: one entry)
        ("null", "shuffle"): (("null", "permutation null"), (
            "The null of a score: the paired rows of one side shuffled R times (a random pairing of the same "
            "latents), each draw scored like the real pairing. Its mean is the null mean; its spread, the null "
            "sd.")),
        ("null", "group"): ((), (
            "The null of many-to-1 pairings: the distinct A partners permuted among the groups of B latents "
            "that share one (B rows fixed, group sizes kept), so the hub structure survives; a plain row "
            "shuffle breaks the repeats and gives a null that is too low.")),
        ("null", "random_subset"): ((), (
            "A second null of the concept subspaces (the authors' `score_rand`): as many latents as the "
            "subspace holds, drawn at random and unpaired from each whole dictionary, scored like the "
            "subspace.")),
        # the steering chapter's maps and recipes ({ref}`steering`)
        ("steering_map", "native"): ((), (
            "In the steering chapter, model B's own steering vector: the same recipe run on B's activations. "
            "The upper bound a carried vector is divided by.")),
        ("steering_map", "procrustes"): ((), (
            "The steering chapter's headline map from A's residual space to B's: orthogonal Procrustes fitted "
            "on the paired decoder rows after centring, $W = UV^\\top$ from the SVD of $X^\\top Y$. It keeps "
            "norms and angles, so it cannot fit the pairs by stretching.")),
        ("steering_map", "lstsq"): ((), (
            "Ridge least squares from A's paired decoder rows to B's (centred): a map that may stretch.")),
        ("steering_map", "activation"): ((), (
            "Ridge least squares from A's residual activations to B's on the aligned tokens: the "
            "activation-level map of the transfer literature, the reference a feature-level map should "
            "approach.")),
        ("steering_map", "shuffled"): ((), (
            "The steering chapter's null map: Procrustes fitted on the paired decoder rows with the pairing "
            "shuffled. Its draws give the transfer efficiency's p-value.")),
        ("steering_map", "random_orthogonal"): ((), (
            "A null map: a random (Haar) orthogonal map from A's space to B's.")),
        ("steering_map", "random_vector"): ((), (
            "A null vector: a random direction of B's residual stream.")),
        ("recipe", "mean_diff"): (("steering vector",), (
            "A steering vector: the mean residual activation of the tokens that are a concept's keywords minus "
            "that of the other tokens (for a contrastive pair, minus that of the contrasting words).")),
        ("recipe", "decoder_sum"): ((), (
            "A steering vector: the sum of the unit decoder rows of the latents assigned to a concept.")),
    }


CONCEPTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("FVU", "held-out FVU"), (
        "Fraction of variance unexplained by an SAE's reconstruction: "
        r"$\sum \|x - \hat x\|^2 / \sum \|x - \bar x\|^2$ over token rows (0 is perfect, 1 no better than the "
        "mean). *Held-out* FVU uses tokens the SAE was not trained on; every results page states it.")),
    (("dead latents",), (
        "The share of an SAE's latents that never fire on the text.")),
    (("L0",), (
        "The mean number of an SAE's latents that fire on one token.")),
    (("PW-MCC", "shared latents"), (
        "Seed stability of an SAE: the decoder rows of two SAEs of one layer matched one to one (Hungarian, "
        "on cosine); PW-MCC is the mean cosine of the matched pairs and a latent is *shared* when its match "
        "reaches cosine 0.7. Random unit directions of the same shapes give the chance level.")),
    (("chooser", "partner"), (
        "In a pairing, the chooser is the latent that picks (a B latent under B picks A) and the partner "
        "the latent it picks: the one whose activations correlate best with its own over the same tokens "
        "(Pearson).")),
    (("hub",), (
        "A latent chosen as partner by several choosers under many-to-1 pairing.")),
    (("junk filter", "shared top token"), (
        "The filters before the pairing rule de-duplicates: pairs whose latents' top tokens are non-concept "
        "tokens (punctuation, whitespace, special tokens; or the authors' junk list) are dropped, and, as the "
        "authors did, a pair must share a top token.")),
    (("r cut",), (
        "The last filter: a pair is kept only when its correlation exceeds `r_min` (0.1, the paper's).")),
    (("permutation p-value", "p-value"), (
        "How often the null reaches the score: with b of R null draws at or above it, "
        r"$p = (1 + b) / (1 + R)$ (Phipson and Smyth 2010), never below $1/(R + 1)$; the authors' code "
        "computes $b / R$.")),
    (("tail p-value", "GPD"), (
        f"The p-value every page uses: the permutation p-value where at least {MIN_EXCEEDANCES} null draws "
        "reach the score; otherwise the upper tail of the null modelled by a generalised Pareto distribution "
        "(GPD) fitted by maximum likelihood to the draws above a threshold, "
        r"$p = (N_\mathrm{tail}/R)\,\bar F_\mathrm{GPD}(s - t)$ (Knijnenburg et al. 2009), so that p can "
        "reach what the draws imply instead of stopping at $1/(R + 1)$. It never exceeds the permutation "
        "p-value; a bounded fitted tail is replaced by the exponential one, which errs towards larger p "
        "({ref}`significance`).")),
    (("Holm", "Holm's procedure", "p (Holm)"), (
        "Holm's step-down correction (1979), the one multiple-testing procedure of this book: the m p-values "
        "of a family sorted, the i-th smallest multiplied by m − i + 1 (kept monotone, capped at 1). A cell "
        f"is above its null when its Holm-adjusted tail p-value is at most {ALPHA:g}; the chance of any false "
        f"claim in the family stays at most {ALPHA:g} (family-wise error).")),
    (("BH", "Benjamini–Hochberg"), (
        "The Benjamini–Hochberg procedure (1995) controls the expected share of false claims among the "
        "claims (false discovery rate), a weaker promise than Holm's. This book does not use it: every page "
        "adjusts by Holm.")),
    (("family",), (
        "The tests one claim is corrected over: the layer pairs of one comparison's grid under one measure, "
        "one pairing rule and one direction (a concept page: its concepts × layer pairs; the unrelated-word "
        "Control is judged apart).")),
    (("above its null", "above null", "above null (Holm)"), (
        f"The book's one decision (`saesim.compare.significance.above_null`): a cell is above its null when "
        f"its Holm-adjusted tail p-value is at most {ALPHA:g} and its score exceeds the null mean.")),
    (("effect over null", "excess over null"), (
        "A score minus the mean of its null: what a raw score means. A raw SVCCA of 0.6 against a null mean "
        "of 0.6 is no similarity at all.")),
    (("z",), (
        "The effect over the null in null standard deviations: (score − null mean) / null sd.")),
    (("share of two SAEs' effect",), (
        "The cross-model effect over its null as a share of the seed control's effect over its own null: "
        "how much of the agreement two SAEs of one model reach the two models reach.")),
    (("transfer efficiency", "side effect"), (
        "The steering chapter's measure: the change a carried steering vector makes to model B's "
        "log-probability of a concept's keywords, divided by the change B's own vector makes, both read at "
        "the same side effect (the KL divergence of B's next-token distribution from the unsteered one). 1: "
        "the carried vector steers as well as B's own; 0: not at all.")),
    (("bootstrap interval", "CI"), (
        "A 95 % interval of a score from resampling the documents with replacement. A verdict puts the "
        "cross-model score *above* a baseline when its interval lies wholly above the baseline's, *below* "
        "when wholly below, and says it *overlaps* otherwise.")),
)
"""The terms that are not vocabulary labels: SAE quality, the pipeline and the statistics."""


def entries(svcca_dims="ratio:10") -> list[Entry]:
    """The glossary, in reading order: measures, pairing rules, directions, nulls, comparisons, then
    :data:`CONCEPTS`.

    Parameters
    ----------
    svcca_dims : str, int or float, default ``"ratio:10"``
        The run's SVCCA dimension policy (``profile.filters.svcca_dims``), named in the SVCCA entry.

    Raises
    ------
    ValueError
        When two entries share a term (a vocabulary label defined twice, e.g. by a new key).
    """
    out, seen = [], {}
    texts = _vocab_texts(svcca_dims)
    for kind in VOCAB_KINDS:
        for key in vocab.TERMS[kind]:
            heading = vocab.label(kind, key)
            if heading.lower() in seen:  # one thing under two kinds ("shuffled null"): one entry
                continue
            more, text = texts.get((kind, key), ((), ""))
            if not text:
                raise ValueError(f"no glossary definition for the {kind} {key!r} ({heading!r}); add it to "
                                 f"_vocab_texts in saesim/report/glossary.py.")
            out.append(Entry((heading, *more), text))
            seen.update({t.lower(): heading for t in (heading, *more)})
    for terms, text in CONCEPTS:
        out.append(Entry(terms, text))
    names = [t.lower() for e in out for t in e.terms]
    repeated = sorted({t for t in names if names.count(t) > 1})
    if repeated:
        raise ValueError(f"glossary terms defined twice: {repeated}; give each one entry.")
    return out


def term(kind: str, key: str) -> str:
    """The glossary term of a vocabulary key: its label (``term("rule", "first_index")`` ->
    ``"1-1 (first occurrence)"``)."""
    return vocab.label(kind, key)


def link(kind: str, key: str, text: str | None = None) -> str:
    """A ``{term}`` role linking to the glossary entry of a vocabulary key, for MyST markdown.

    Examples
    --------
    >>> link("measure", "rsa")
    '{term}`RSA`'
    >>> link("rule", "hungarian", "Hungarian")
    '{term}`Hungarian <1-1 (Hungarian)>`'
    """
    name = term(kind, key)
    return f"{{term}}`{text} <{name}>`" if text and text != name else f"{{term}}`{name}`"


def glossary_markdown(svcca_dims="ratio:10") -> str:
    """The glossary page's body: one MyST ``glossary`` directive over :func:`entries`.

    Each entry's terms are its lines (Sphinx links ``{term}`` roles to them, case-insensitively),
    its definition the indented paragraph below.
    """
    lines = ["Every measure, test, control and pairing rule the pages name, as `saesim` computes it. A "
             "table's column header and a figure's legend use the same names (`saesim.vocab`); this page "
             "is generated from `saesim.report.glossary`.", "", ":::{glossary}"]
    for entry in entries(svcca_dims):
        lines.extend(entry.terms)
        lines.append("  " + entry.text)
        lines.append("")
    lines.append(":::")
    return "\n".join(lines) + "\n"
