"""Compare two SAE dictionaries: best partners (``corr``), filters and concepts, pairing rules
(``match``) and the filter pipeline (``stages``), similarity measures (``geometry``, with SVCCA's
PCA step in ``subspace``), permutation nulls (``nulls``), multiple testing (``multitest``), effect
sizes (``effects``), the array side of the document bootstrap (``bootstrap``) and planted test
data (``synthetic``). Never imports ``saesim.extract`` or matplotlib."""
