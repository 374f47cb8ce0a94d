"""TFLite lowerings, one module per op family (listed in ``registry.OP_MODULES``)."""
