"""Multiply-accumulates of one inference of an ONNX model (Conv, Gemm, MatMul), from its inferred shapes.

    /usr/bin/python3 benchmarks/ceiling/model_macs.py ../shared/models/densenet121-cxr18-random/model.onnx
Needs Debian's python3-onnx (installed by benchmarks/peer/setup.sh). Prints one JSON object.
"""
import json
import sys

import onnx
from onnx import shape_inference


def main(path: str) -> None:
    model = shape_inference.infer_shapes(onnx.load(path))
    shapes = {}
    for info in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        shapes[info.name] = [d.dim_value for d in info.type.tensor_type.shape.dim]
    weights = {init.name: list(init.dims) for init in model.graph.initializer}
    macs = 0
    unknown = []
    for node in model.graph.node:
        if node.op_type == 'Conv':
            out = shapes.get(node.output[0])
            w = weights.get(node.input[1])
            if not out or not w:
                unknown.append(node.name)
                continue
            # per output element: (input channels / group) x kernel area, which the weight's shape already holds
            macs += out[1] * out[2] * out[3] * w[1] * w[2] * w[3]
        elif node.op_type in ('Gemm', 'MatMul'):
            w = weights.get(node.input[1])
            if w:
                macs += w[0] * w[1]
            else:
                unknown.append(node.name)
    print(json.dumps({'model': path, 'gmac': macs / 1e9, 'gflop': 2 * macs / 1e9, 'nodesNotCounted': unknown}))


if __name__ == '__main__':
    main(sys.argv[1])
