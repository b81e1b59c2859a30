"""The paper's figures drawn from the tidy experiment tables.

Every function takes a tidy :class:`pandas.DataFrame` (``full_space.parquet``,
``subspace.parquet``) or plain arrays and returns a matplotlib object; nothing
here computes an experiment or reads a file. Functions that draw a single panel
take ``ax=`` and return the :class:`~matplotlib.axes.Axes`; the others return
a :class:`~matplotlib.figure.Figure`.

Figures are built as :class:`matplotlib.figure.Figure` objects, not through
pyplot: no backend is selected, no window opens and no global figure list
grows, so the functions are safe in loops, workers and headless builds. In a
notebook, end the cell with the figure (``fig``) to display it;
:func:`save_figure` writes it to disk.

The heatmap style is the paper's (paper_figures.md §5.7): seaborn ``magma``,
``fmt=".3f"``, bold 14 pt annotations, model-B layers on the y axis with the
lowest layer at the bottom. Its settings travel as one :class:`HeatmapStyle`;
unlike the paper's figures, colour limits come from the data (never a fixed
vmax that the values pass), panels compared side by side share one scale, an
excess over the null is white at 0 and diverges only when values lie on both
sides of it, a tiny spread is not stretched over the whole colour range, and a
column with one value in every cell is stated in a sentence
(:func:`constant_text`) instead of drawn as a block of one colour
(:func:`panel_style`, :class:`HeatmapStyle`).

=============================  =====================================================
Paper item                     Function
=============================  =====================================================
Fig. 1 (method)                :func:`method_diagram`
Fig. 2 (toy pairing)           :func:`toy_pairing_figure`
Figs. 3-4, A1-A7               :func:`heatmap_panels` / :func:`layer_heatmap`
                               (settings: :class:`HeatmapStyle`)
A8 (bar plot)                  :func:`paired_vs_null_bars`, :func:`paired_vs_null_panels`
A6-A7 beside 1-1, every rule   :func:`rule_heatmaps`, :func:`rule_bars`
filter stages (A4/A6 counts)   :func:`filter_stages`
A9-A10 (concept heatmaps)      :func:`concept_heatmap_grid`
hubs, frequencies, p-values    :func:`hub_histogram`, :func:`frequency_histogram`,
                               :func:`pvalue_histogram`
baselines, sweeps              :func:`plot_baselines`, :func:`plot_sweep` (drawn in
                               :mod:`saesim.report.plots_robust`, re-exported here)
SAE frontier (issue #22)       :func:`plot_sae_frontier`, :func:`plot_sae_recipe_axes`
=============================  =====================================================

This module is the public face of the figure code, which lives in private
modules of :mod:`saesim.report`, one job each (import from here, not there):

* ``_plot_scale`` — :class:`HeatmapStyle`, the colour scale it gives for
  some data, and :func:`constant_value`;
* ``_plot_style`` — panel titles and default styles (:func:`panel_title`,
  :func:`panel_style`), :func:`panel_axes`, figure grids and the annotated
  cell grid every heatmap draws;
* ``_plot_heatmaps`` — :func:`layer_heatmap`, :func:`heatmap_panels`,
  :func:`comparison_heatmaps`, :func:`rule_heatmaps`, :func:`concept_heatmap_grid`,
  :func:`shared_style`, :func:`constant_text`;
* ``_plot_bars`` — :func:`paired_vs_null_bars`, :func:`paired_vs_null_panels`,
  :func:`rule_bars`, :func:`control_bars`, :func:`filter_stages`,
  :func:`hub_histogram`, :func:`frequency_histogram`,
  :func:`multiple_testing_cutoffs`, :func:`pvalue_histogram`;
* ``_plot_schematics`` — :func:`method_diagram`, :func:`toy_pairing_figure`;
* ``_plot_save`` — :func:`save_figure` and :data:`FIGURE_NAMES`;
* ``_plot_captions`` — :func:`caption`, :func:`dims_words`, :func:`dims_with_pairs`;
* ``_plot_frontier`` — :func:`plot_sae_frontier` (seed stability and held-out FVU against
  training tokens) and :func:`tokens_short`.

References
----------
Lan et al., "Sparse Autoencoders Reveal Universal Feature Spaces Across Large
Language Models", arXiv:2410.06981 (2024).

Holm, "A simple sequentially rejective multiple test procedure", Scand. J.
Stat. 6 (1979), 65-70.

Benjamini and Hochberg, "Controlling the false discovery rate", J. R. Stat.
Soc. B 57 (1995), 289-300.
"""

from __future__ import annotations

from saesim.report._plot_bars import (
    FILTER_STAGES,
    PAGE_PANEL_SIZE,
    Cutoffs,
    control_bars,
    filter_stages,
    frequency_histogram,
    hub_histogram,
    multiple_testing_cutoffs,
    paired_vs_null_bars,
    paired_vs_null_panels,
    pvalue_histogram,
    rule_bars,
)
from saesim.report._plot_captions import caption, dims_with_pairs, dims_words, labels_text
from saesim.report._plot_frontier import FIT_REACH, plot_sae_frontier, plot_sae_recipe_axes, tokens_short
from saesim.report._plot_heatmaps import (
    CONSTANT_LABEL,
    MIN_TEXT_PX,
    PAGE_WIDTH_PX,
    comparison_heatmaps,
    concept_heatmap_grid,
    constant_text,
    heatmap_panels,
    layer_heatmap,
    rule_heatmaps,
    shared_style,
)
from saesim.report._plot_save import FIGURE_NAMES, SAVE_DPI, SAVE_FORMATS, save_figure
from saesim.report._plot_save import png_width as _png_width  # noqa: F401  (the book's tests read PNG widths)
from saesim.report._plot_scale import HeatmapStyle, constant_value
from saesim.report._plot_schematics import method_diagram, toy_pairing_figure
from saesim.report._plot_style import ANNOT_KWS, panel_axes, panel_style, panel_title
from saesim.report.plots_robust import plot_baselines, plot_sweep, policy_label

__all__ = [
    "dims_with_pairs",
    "dims_words",
    "labels_text",
    "ANNOT_KWS",
    "CONSTANT_LABEL",
    "FIGURE_NAMES",
    "FIT_REACH",
    "FILTER_STAGES",
    "PAGE_PANEL_SIZE",
    "HeatmapStyle",
    "SAVE_FORMATS",
    "Cutoffs",
    "caption",
    "concept_heatmap_grid",
    "constant_text",
    "constant_value",
    "control_bars",
    "filter_stages",
    "frequency_histogram",
    "comparison_heatmaps",
    "heatmap_panels",
    "hub_histogram",
    "layer_heatmap",
    "method_diagram",
    "multiple_testing_cutoffs",
    "paired_vs_null_bars",
    "paired_vs_null_panels",
    "panel_axes",
    "plot_baselines",
    "plot_sae_frontier",
    "plot_sae_recipe_axes",
    "plot_sweep",
    "policy_label",
    "panel_style",
    "panel_title",
    "pvalue_histogram",
    "rule_bars",
    "rule_heatmaps",
    "save_figure",
    "shared_style",
    "tokens_short",
    "toy_pairing_figure",
]

# Also public here, as before the split: PAGE_WIDTH_PX, MIN_TEXT_PX and SAVE_DPI (imported above).
