"""From text to sparse codes: texts and token grids (``data``), the only language-model code
(``models``), SAEs (``saes``), the artefact store (``cache``), top activations (``tokens``) and the
cached pipeline that ties them together (``pipeline``)."""
