"""int8 blocks priced as they run inside an int8 network: uint8 edges, and unit-scale activation ranges."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from latency_predictors.activation_ranges import unit_activations
from latency_predictors.int8_edges import as_in_network
from latency_predictors.runtime import RuntimeSettings, make_backend, onnx_model_bytes, quantize_int8
from search_spaces.layers import ConvBNAct

SHAPE = (8, 12, 12)


def _ops(model: bytes) -> list[str]:
    return [n.op_type for n in onnx.load_from_string(model).graph.node]


def _io_types(model: bytes) -> tuple[int, int]:
    g = onnx.load_from_string(model).graph
    return g.input[0].type.tensor_type.elem_type, g.output[0].type.tensor_type.elem_type


def _block(act: str) -> nn.Module:
    # conv -> BN -> act then a projection: a quantized output (relu ... conv) or a float one (h_swish last)
    if act == "relu":
        return nn.Sequential(ConvBNAct(8, 16, 1, act="relu"), ConvBNAct(16, 16, 3, groups=16, act="relu"),
                             ConvBNAct(16, 8, 1, act="none"))
    return ConvBNAct(8, 16, 3, act="h_swish")


def test_a_quantized_block_in_network_form_has_uint8_edges_and_no_boundary_quantize():
    q = quantize_int8(onnx_model_bytes(_block("relu").eval(), SHAPE), SHAPE, 1)
    assert _io_types(q) == (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT)
    edged = as_in_network(q)
    assert _io_types(edged) == (onnx.TensorProto.UINT8, onnx.TensorProto.UINT8)
    # exactly the boundary quantize and dequantize went; the block's own QDQ pairs stay
    assert _ops(q).count("QuantizeLinear") - _ops(edged).count("QuantizeLinear") == 1
    assert _ops(q).count("DequantizeLinear") - _ops(edged).count("DequantizeLinear") == 1
    assert not any(n.op_type == "QuantizeLinear" and "input" in n.input
                   for n in onnx.load_from_string(edged).graph.node)


def test_a_block_ending_in_a_float_op_gets_the_quantize_the_network_runs_after_it():
    q = quantize_int8(onnx_model_bytes(_block("h_swish").eval(), SHAPE), SHAPE, 1)
    g = onnx.load_from_string(q).graph
    assert next(n for n in g.node if "output" in n.output).op_type == "HardSwish"  # float out, alone
    edged = as_in_network(q)
    last = next(n for n in onnx.load_from_string(edged).graph.node if "output" in n.output)
    assert last.op_type == "QuantizeLinear" and _io_types(edged) == (onnx.TensorProto.UINT8, onnx.TensorProto.UINT8)


def test_the_int8_backend_times_blocks_in_network_form_and_networks_as_they_are():
    backend = make_backend(RuntimeSettings(threads=1, precision="int8"))
    block = backend.prepare(_block("relu"), SHAPE, role="block")
    assert block.session.get_inputs()[0].type == "tensor(uint8)"
    assert block.session.get_outputs()[0].type == "tensor(uint8)"
    assert (block.time_ms(1, 3) > 0).all()
    net = backend.prepare(_block("relu"), SHAPE)  # a whole network keeps its float input and output
    assert net.session.get_inputs()[0].type == "tensor(float)"
    fp32 = make_backend(RuntimeSettings(threads=1)).prepare(_block("relu"), SHAPE, role="block")
    assert fp32.session.get_inputs()[0].type == "tensor(float)"  # float blocks have no edges to remove


def test_unit_activations_keep_a_deep_random_network_from_collapsing():
    torch.manual_seed(0)
    deep = nn.Sequential(*[ConvBNAct(16, 16, 3, act="relu") for _ in range(20)])
    x = torch.randn(1, 16, 12, 12)
    with torch.no_grad():
        before = deep.eval()(x).std().item()
        ranged = unit_activations(deep, (16, 12, 12))
        after = ranged(x).std().item()
    assert before < 1e-4  # default init shrinks the variance layer after layer
    assert 0.1 < after < 10 and not ranged.training
    # a copy: the caller's statistics stay, and the weights are the same; only BatchNorm statistics moved
    assert ranged is not deep and float(deep[5].bn.running_var.mean()) == 1.0
    assert float(ranged[5].bn.running_var.mean()) != 1.0
    assert all(torch.equal(a.conv.weight, b.conv.weight) for a, b in zip(deep, ranged))


@pytest.mark.parametrize("module", [nn.Conv2d(8, 8, 1), nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())])
def test_unit_activations_leave_modules_without_batchnorm_alone(module):
    out = unit_activations(module, SHAPE)
    assert out is module and not module.training
