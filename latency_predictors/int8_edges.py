"""An int8 block as it runs inside an int8 network: uint8 in, uint8 out (QDQ graph edits).

A block quantized alone (``runtime.quantize_int8``, QDQ format) takes a float input and gives a float
output: ONNX Runtime runs a ``QuantizeLinear`` on its input, fuses the ``DequantizeLinear -> Conv ->
QuantizeLinear`` chains inside into ``QLinearConv``, and runs a ``DequantizeLinear`` on its output.
Inside a whole int8 network the tensor between two such blocks stays uint8: the producer's
``QLinearConv`` feeds the consumer's directly, and neither the dequantize nor the quantize at the
boundary runs. Summing blocks timed alone therefore prices two elementwise passes over every
boundary tensor that the network never makes, and these are large next to int8 compute (a 112x112x24
boundary is 301k elements each way) and grow with depth, not with MACs, so a linear calibration on
the block sum cannot remove them.

``as_in_network(model)`` edits a quantized block so that it is timed in its network form:

- **input**: when every consumer of the graph input is a ``QuantizeLinear``, those nodes are removed
  and the graph input becomes their uint8/int8 output (the producer block's quantized output);
- **output**: a graph output made by a ``DequantizeLinear`` loses it and is the quantized tensor;
  a float output (the block ends in an op that has no int8 kernel, e.g. ``HardSwish``) gets the
  ``QuantizeLinear`` that the network runs before the next block's first quantized op.

What this convention leaves unpriced is per network, not per block: the network's own quantize of
the image and dequantize of the logits, and at the head a quantize the network runs after a float
op's consumer instead (ofa: ``Conv_1``'s HardSwish feeds the float ``ReduceMean`` directly). These
depend on the resolution only and go into the calibration's offset. The edges are measured, not
modelled: the block is the same quantized graph with its boundary ops removed or added.
"""

from __future__ import annotations

import numpy as np

OUTPUT_SCALE = 0.05  # the appended quantize's scale; the time of a QuantizeLinear does not depend on it


def as_in_network(model: bytes, input_name: str = "input", output_name: str = "output") -> bytes:
    """The quantized (QDQ) model ``model`` with uint8 edges, as between two blocks of an int8 network."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.load_from_string(model)
    g = m.graph
    inits = {t.name: t for t in g.initializer}

    def zp_type(node) -> int:
        if len(node.input) > 2 and node.input[2] in inits:
            return inits[node.input[2]].data_type
        return TensorProto.UINT8

    # ---- input: drop the quantize of the block's float input ----
    consumers = [n for n in g.node if input_name in n.input]
    if consumers and all(n.op_type == "QuantizeLinear" and n.input[0] == input_name for n in consumers):
        elem = zp_type(consumers[0])
        quantized = {n.output[0] for n in consumers}
        for n in consumers:
            g.node.remove(n)
        for n in g.node:
            for i, name in enumerate(n.input):
                if name in quantized:
                    n.input[i] = input_name
        inp = next(v for v in g.input if v.name == input_name)
        inp.type.tensor_type.elem_type = elem

    # ---- output: drop its dequantize, or quantize a float output ----
    producer = next((n for n in g.node if output_name in n.output), None)
    out = next(v for v in g.output if v.name == output_name)
    if producer is not None and producer.op_type == "DequantizeLinear":
        src = producer.input[0]
        elem = zp_type(producer)
        g.node.remove(producer)
        for n in g.node:
            for i, name in enumerate(n.output):
                if name == src:
                    n.output[i] = output_name
            for i, name in enumerate(n.input):
                if name == src:
                    n.input[i] = output_name
        out.type.tensor_type.elem_type = elem
    elif producer is not None:
        float_out = f"{output_name}_float"
        for n in g.node:
            for i, name in enumerate(n.output):
                if name == output_name:
                    n.output[i] = float_out
        scale, zp = f"{output_name}_edge_scale", f"{output_name}_edge_zero_point"
        g.initializer.extend([numpy_helper.from_array(np.array(OUTPUT_SCALE, np.float32), scale),
                              numpy_helper.from_array(np.array(128, np.uint8), zp)])
        g.node.append(helper.make_node("QuantizeLinear", [float_out, scale, zp], [output_name]))
        out.type.tensor_type.elem_type = TensorProto.UINT8
    del g.value_info[:]
    return m.SerializeToString()
