"""Cost models, one module per op family; each registers its ops in
``converters.analysis.registry``. Formulas are listed in docs/ROOFLINE.md."""
