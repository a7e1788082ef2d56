"""Writes small ONNX files the error-path tests feed to convlens.

unsupported_op.onnx: a valid image model whose scores go through Hardmax, an
op onnx-gomlx does not implement: loading it must fail with the op named.

Run with Debian's python3-onnx: /usr/bin/python3 scripts/reference/gen_bad_models.py
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "testdata", "bad")
os.makedirs(here, exist_ok=True)

w = numpy_helper.from_array(np.full((4, 3, 3, 3), 0.1, np.float32), "w")
fc = numpy_helper.from_array(np.full((4, 2), 0.5, np.float32), "fc")
nodes = [
    helper.make_node("Conv", ["input", "w"], ["conv"], pads=[1, 1, 1, 1]),
    helper.make_node("Relu", ["conv"], ["relu"]),
    helper.make_node("GlobalAveragePool", ["relu"], ["gap"]),
    helper.make_node("Flatten", ["gap"], ["flat"]),
    helper.make_node("MatMul", ["flat", "fc"], ["scores"]),
    helper.make_node("Hardmax", ["scores"], ["logits"]),
]
graph = helper.make_graph(
    nodes, "unsupported_op",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 16, 16])],
    [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
    initializer=[w, fc],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="convlens-tests")
onnx.checker.check_model(model)
onnx.save(model, os.path.join(here, "unsupported_op.onnx"))
