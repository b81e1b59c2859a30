"""Presentation: tables, prose generated from tables (``prose``), figures (the only matplotlib code;
``plots``, with the robustness figures in ``plots_robust``), the SAE frontier's prose and table
(``frontier``), the explorer, the authors' reported numbers and the book build."""
