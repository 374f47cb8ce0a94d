"""The one registry helper every per-op table is built with (``edgert.op_registry``):
op keys normalized once, opset ranges, duplicates refused, lazy filling, listing."""
from __future__ import annotations

import sys

import pytest

from edgert.op_registry import (DuplicateRegistrationError, OpKey, OpRegistry, OpsetRange,
                                default_opset, is_default_domain, normalize_domain, op_label)

# filled by tests/runtime/lazy_ops_fixture.py when first read
LAZY: OpRegistry = OpRegistry("lazy rule", modules=("tests.runtime.lazy_ops_fixture",))


def test_the_default_domain_has_one_spelling():
    assert is_default_domain("") and is_default_domain("ai.onnx") and is_default_domain(None)
    assert not is_default_domain("com.microsoft") and not is_default_domain("ai.onnx.ml")
    assert normalize_domain("ai.onnx") == "" and normalize_domain("ai.edgert") == "ai.edgert"
    assert OpKey("ai.onnx", "Conv") == OpKey("", "Conv") and hash(OpKey("ai.onnx", "Conv")) \
        == hash(OpKey("", "Conv"))
    assert OpKey("com.ms", "Conv") != OpKey("", "Conv")
    assert op_label("ai.onnx", "Conv") == "Conv" == OpKey("", "Conv").label
    assert op_label("ai.edgert", "Gelu") == "ai.edgert::Gelu"
    assert default_opset({"ai.onnx": 17}, 13) == 17 and default_opset({"": 11}, 13) == 11
    assert default_opset({"com.ms": 1}, 13) == 13


def test_register_returns_the_function_and_looks_up_by_domain_and_opset():
    reg: OpRegistry = OpRegistry("test rule")

    def old(node):
        return "old"

    def new(node):
        return "new"

    assert reg.register("Op", opsets=(1, 10))(old) is old
    assert reg.register("Op", domain="ai.onnx", opsets=(11, None))(new) is new
    assert reg.lookup("Op", "", 10) is old and reg.lookup("Op", "ai.onnx", 10) is old
    assert reg.lookup("Op", "", 11) is new and reg.lookup("Op", opset=99) is new
    assert reg.lookup("Op", "com.example", 11) is None and reg.lookup("Other", "", 11) is None
    assert [r.opsets for r in reg.registrations("Op")] == [(1, 10), (11, None)]
    with pytest.raises(ValueError, match="depends on the opset"):
        reg.lookup("Op")                        # two ranges: the opset must be given
    assert "Op" in reg and OpKey("ai.onnx", "Op") in reg and "Other" not in reg


def test_a_duplicate_registration_is_refused_naming_both():
    reg: OpRegistry = OpRegistry("test rule")
    reg.register("Op", opsets=(5, 12))(lambda n: 1)
    for span in ((1, 5), (12, None), (1, None), (7, 8)):
        with pytest.raises(DuplicateRegistrationError,
                           match=r"test rule for Op registered twice \(opsets 5-12 by "):
            reg.add("Op", 2, opsets=span, source="mod.second")
    assert len(reg.registrations("Op")) == 1            # nothing was overwritten
    reg.add("Op", 3, opsets=(13, None))                 # disjoint: fine
    reg.add("Op", 4, domain="com.example")              # another domain: another key
    with pytest.raises(DuplicateRegistrationError, match="com.example::Op"):
        reg.add("Op", 5, domain="com.example", opsets=(20, None))
    with pytest.raises(ValueError, match="empty opset range"):
        reg.add("Empty", 1, opsets=(9, 3))
    assert isinstance(DuplicateRegistrationError("x"), ValueError)


def test_opset_ranges():
    r = OpsetRange(7, 12)
    assert r.covers(7) and r.covers(12) and not r.covers(6) and not r.covers(13)
    assert OpsetRange(13).covers(10 ** 6) and str(OpsetRange(13)) == "13+" and str(r) == "7-12"
    assert r.overlaps(OpsetRange(12, 20)) and not r.overlaps(OpsetRange(13))
    lo, hi = r
    assert (lo, hi) == (7, 12)


def test_a_registry_of_another_namespace_and_its_listing():
    reg: OpRegistry = OpRegistry("builtin rule", domain="tflite")
    reg.register("CONV_2D", "ADD")(lambda s: 1)
    reg.add("Custom", 0, domain="")
    assert reg.lookup("CONV_2D") is not None and reg.lookup("CONV_2D", "") is None
    assert reg.op_types() == ["CONV_2D", "ADD"]          # its own domain, in order
    assert reg.labels() == ["Custom", "tflite::ADD", "tflite::CONV_2D"]
    assert len(reg) == 3


def test_modules_fill_the_table_on_first_use():
    assert "tests.runtime.lazy_ops_fixture" not in sys.modules
    assert LAZY.lookup("Lazy")() == "lazy"
    assert "tests.runtime.lazy_ops_fixture" in sys.modules
    assert LAZY.labels() == ["Lazy"]


def test_every_per_op_table_is_an_op_registry():
    """The tables of per-op knowledge, each built with the one helper (their lookups then
    share the domain normalization and their registrations the duplicate check)."""
    from converters.analysis import registry as costs
    from converters.layout import check
    from converters.mnn import legalize, support as mnn_support
    from converters.passes import decompose
    from converters.pruning import rules
    from converters.tflite import int8_ops, registry, support, versions
    from quant_tables import layer_weights, propagate

    tables = [registry.LOWERINGS, support.KNOWN_GAPS, versions._RULES, int8_ops.KERNELS,
              check._RULES, costs._COSTS, decompose._TABLE, rules.RULES,
              mnn_support.WRONG, legalize._RNN_OUTPUTS, layer_weights._AXIS_RULES,
              propagate.PASSTHROUGH, propagate.INHERIT_WHEN_MISSING]
    for t in tables:
        assert isinstance(t, OpRegistry) and len(t) > 0, t
    assert len({t.what for t in tables}) == len(tables)
