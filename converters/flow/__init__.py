"""``convert()`` as declared stages over a typed context.

    recognize -> export -> prune -> passes -> sparsity -> save -> quantize
        -> reference -> convert (check once + write, per target) -> verify -> write

- ``context.py``: ``ConversionRequest`` (convert()'s arguments, checked before any
  work by ``make_request``) and ``ConversionContext`` (one field per stage output);
- ``stages.py``: one small function per stage and ``STAGES``, the declared list
  (what each stage needs and makes), run by ``run_stages`` with per-stage timing;
- ``targets.py``: one target's check/write and verification, failures kept per target;
- ``reference.py``: verification inputs, and the simulation references of sources
  that carried their own quantization;
- ``report.py``: ``ConversionReport`` / ``TargetReport``.

``converters.api.convert`` is the entry: it makes the request, runs the stages and
raises the first target failure after the report is written.
"""
