"""Fold an explicit zero ``Pad`` into the following Conv's ``pads`` (and turn
``auto_pad=SAME_*`` into explicit pads first, so the fold can add to them).

onnxscript's rules do it and refuse with a reason for non-constant pads, a
non-zero pad value, non-"constant" modes, or padding on batch/channel axes.
"""
from __future__ import annotations

from converters.passes.base import RulePass


class FusePadIntoConv(RulePass):
    name = "fuse_pad_conv"
    description = "fold zero Pad into the following Conv"

    def rules(self):
        from onnxscript.rewriter.rules import common as R

        return [R.normalize_pad_format_conv_rule, R.fuse_pad_into_conv_rule]

    def reported_rules(self):
        from onnxscript.rewriter.rules import common as R

        return [R.fuse_pad_into_conv_rule]
