"""Writes testdata/zoo/: small look-alikes of the three ONNX model zoo files
package models/pretrained downloads, for models/pretrained/lookalike_test.go.

The real files are too large to download in tests; these have their traits
at a few kilobytes: the MXNet exporter's generation of ONNX (opset 7, IR
version 3, every weight also listed as a graph input), one input `data` of
3x224x224, MXNet node and tensor names (`vgg0_conv0_fwd`,
`resnetv22_stage1_conv0_fwd`, output `vgg0_dense2_fwd` of 1000 scores), the
same op kinds and attribute styles (Dropout-7 with `ratio` and no mask
output, unfused BatchNormalization with `epsilon`, `momentum` and
`spatial`, Flatten before Gemm with `transB`), and the real spatial path at
224x224, with 4 to 12 channels instead of 64 to 2048 and fewer blocks:

  vgg16-7-lookalike.onnx: VGG-16's 13 3x3 convolutions in 5 blocks, each
      block ending in a 2x2 MaxPool (224 -> 7), then Flatten, Gemm, Relu,
      Dropout, Flatten, Gemm, Relu, Dropout, Flatten, Gemm. Batch fixed at
      1, as in vgg16-7.onnx.
  resnet18-v2-7-lookalike.onnx: pre-activation ResNet (BN on the input,
      7x7/2 stem, BN, Relu, 3x3/2 MaxPool; one BasicBlockV2 per stage:
      BN -> Relu -> Conv twice, an identity shortcut in stage 1, a stride-2
      3x3 and a 1x1 projection of the activated input in stages 2-4; Add),
      final BN, Relu,
      GlobalAveragePool, Flatten, Gemm.
  resnet50-v1-7-lookalike.onnx: post-activation ResNet (7x7/2 stem, BN,
      Relu, MaxPool; BottleneckV1 blocks: 1x1 (stride, with bias) -> 3x3 ->
      1x1, BN after each, a 1x1 projection with BN on the first block of
      each stage, Add, Relu; two blocks in stage 1, one in the others),
      GlobalAveragePool, Flatten, Gemm.

The two ResNets declare the batch as `N`, as the zoo's ResNet files have since
onnx/models#537 ("Add N batch dimension to all ResNet models"); VGG-16 keeps
the fixed 1 of its file.

Weights are random from a fixed seed; each BatchNormalization's statistics
are those its input has on a calibration batch (times a random factor), so
that activations keep a sensible scale through the depth.

vgg16-12-lookalike.onnx, resnet50-v1-12-lookalike.onnx: the VGG-16 and
  ResNet-50 ones converted to opset 12 with ONNX's version converter, as the
  zoo made its opset-12 files from its opset-7 ones (Dropout's ratio becomes
  a Constant input).

Besides each NAME.onnx (NAME is vgg16-7-lookalike, ...) it writes, from a
NumPy interpreter of the written file (onnx 1.12 has no onnx.reference):
  input.npy            [2,3,224,224] float32, shared by all three: seeded
                       noise, each image with a coloured blob of its own;
  NAME.logits.npy      [2,1000] their logits, one image at a time;
  NAME.gradcam_raw.npy [2,7,7] the signed Grad-CAM map, sum_k mean(dS/dA_k) A_k,
                       of each image's top class S at the model's last layer
                       with spatial axes (named in NAME.layer.txt).
Re-running gives byte-identical files.

Run with Debian's python3-onnx and NumPy: /usr/bin/python3 scripts/reference/gen_lookalikes.py
"""
import os

import numpy as np
import onnx
from onnx import version_converter
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "testdata", "zoo")
CLASSES = 1000
MAX_BYTES = 100 * 1024


class Net:
    """Builds an MXNet-style ONNX graph node by node, recording its weights."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes = []
        self.weights = []  # (name, array), in creation order
        self.uncalibrated = set()  # BatchNormalization nodes whose statistics are still to be set

    def weight(self, name, array):
        self.weights.append((name, np.asarray(array, np.float32)))
        return name

    def node(self, op, inputs, name, **attrs):
        # The MXNet exporter names each node's output after the node.
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def conv(self, x, name, cin, cout, k, stride=1, pad=0, bias=False):
        std = np.sqrt(2.0 / (cin * k * k))  # He initialisation keeps ReLU activations at scale
        inputs = [x, self.weight(name + "_weight", self.rng.normal(0, std, (cout, cin, k, k)))]
        if bias:
            inputs.append(self.weight(name + "_bias", self.rng.normal(0, 0.1, cout)))
        return self.node("Conv", inputs, name + "_fwd", kernel_shape=[k, k], strides=[stride, stride],
                         pads=[pad] * 4, dilations=[1, 1], group=1)

    def bn(self, x, name, c, affine=True):
        gamma = self.rng.uniform(0.5, 1.5, c) if affine else np.ones(c)
        beta = self.rng.normal(0, 0.2, c) if affine else np.zeros(c)
        inputs = [x, self.weight(name + "_gamma", gamma), self.weight(name + "_beta", beta),
                  self.weight(name + "_running_mean", np.zeros(c)), self.weight(name + "_running_var", np.ones(c))]
        out = self.node("BatchNormalization", inputs, name + "_fwd", epsilon=1e-5, momentum=0.9, spatial=1)
        self.uncalibrated.add(out)
        return out

    def relu(self, x, name):
        return self.node("Relu", [x], name)

    def maxpool(self, x, name, k, stride, pad):
        return self.node("MaxPool", [x], name, kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)

    def dense(self, x, name, flatten, cin, cout, std):
        x = self.node("Flatten", [x], flatten, axis=1)
        w = self.weight(name + "_weight", self.rng.normal(0, std, (cout, cin)))  # MXNet's [out, in]
        b = self.weight(name + "_bias", self.rng.normal(0, 0.1, cout))
        return self.node("Gemm", [x, w, b], name + "_fwd", alpha=1.0, beta=1.0, transA=0, transB=1)

    def model(self, graph_name, batch, output, calibration):
        self.calibrate(calibration)
        weights = [numpy_helper.from_array(a, n) for n, a in self.weights]
        inputs = [helper.make_tensor_value_info("data", TensorProto.FLOAT, [batch, 3, 224, 224])]
        # IR version 3: every initializer is also a graph input (it could be fed instead).
        inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, a.shape) for n, a in self.weights]
        graph = helper.make_graph(self.nodes, graph_name, inputs,
                                  [helper.make_tensor_value_info(output, TensorProto.FLOAT, [batch, CLASSES])],
                                  initializer=weights)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 7)], ir_version=3,
                              producer_name="convlens gen_lookalikes.py (MXNet exporter traits)")
        onnx.checker.check_model(m)
        return m

    def calibrate(self, x):
        """Sets each BatchNormalization's statistics from its input on x, in graph order."""
        index = {n: i for i, (n, _) in enumerate(self.weights)}

        def on_bn(node, inputs):
            if node.output[0] not in self.uncalibrated:
                return
            act = inputs[0]
            mean = act.mean(axis=(0, 2, 3))
            var = act.var(axis=(0, 2, 3)) * self.rng.uniform(0.7, 1.3, act.shape[1])
            mean = mean + self.rng.normal(0, 0.1, act.shape[1]) * np.sqrt(var)
            self.weights[index[node.input[3]]] = (node.input[3], mean.astype(np.float32))
            self.weights[index[node.input[4]]] = (node.input[4], var.astype(np.float32))
            inputs[3], inputs[4] = mean.astype(np.float32).astype(np.float64), var.astype(np.float32).astype(np.float64)

        env = {n: a.astype(np.float64) for n, a in self.weights}
        env["data"] = x.astype(np.float64)
        evaluate(self.nodes, env, on_bn)
        self.uncalibrated.clear()


# --- The NumPy interpreter of the ops the look-alikes use (ONNX semantics, float64). ---

def attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def windows(x, kh, kw, sh, sw, pads, fill):
    x = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])), constant_values=fill)
    w = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    return w[:, :, ::sh, ::sw]  # [N, C, Ho, Wo, kh, kw]


def op_conv(x, a, w, b=None):
    assert a.get("group", 1) == 1 and list(a.get("dilations", [1, 1])) == [1, 1]
    kh, kw = w.shape[2:]
    s = a.get("strides", [1, 1])
    win = windows(x, kh, kw, s[0], s[1], a.get("pads", [0, 0, 0, 0]), 0.0)
    y = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
    return y if b is None else y + b[None, :, None, None]


def op_maxpool(x, a):
    k, s = a["kernel_shape"], a.get("strides", [1, 1])
    return windows(x, k[0], k[1], s[0], s[1], a.get("pads", [0, 0, 0, 0]), -np.inf).max(axis=(4, 5))


def op_bn(x, a, gamma, beta, mean, var):
    c = (None, slice(None), None, None)
    return (x - mean[c]) / np.sqrt(var[c] + a.get("epsilon", 1e-5)) * gamma[c] + beta[c]


def op_gemm(x, a, w, b):
    x = x.T if a.get("transA", 0) else x
    w = w.T if a.get("transB", 0) else w
    return a.get("alpha", 1.0) * x @ w + a.get("beta", 1.0) * b


OPS = {
    "Conv": lambda ins, a: op_conv(ins[0], a, *ins[1:]),
    "BatchNormalization": lambda ins, a: op_bn(ins[0], a, *ins[1:]),
    "Relu": lambda ins, a: np.maximum(ins[0], 0),
    "MaxPool": lambda ins, a: op_maxpool(ins[0], a),
    "Add": lambda ins, a: ins[0] + ins[1],
    "GlobalAveragePool": lambda ins, a: ins[0].mean(axis=(2, 3), keepdims=True),
    "Flatten": lambda ins, a: ins[0].reshape(int(np.prod(ins[0].shape[:a.get("axis", 1)])), -1),
    "Gemm": lambda ins, a: op_gemm(ins[0], a, *ins[1:]),
    "Dropout": lambda ins, a: ins[0],  # the identity at inference
    "Constant": lambda ins, a: numpy_helper.to_array(a["value"]),  # the version converter's Dropout ratios
}


def evaluate(nodes, env, hook=None):
    for n in nodes:
        inputs = [env[i] for i in n.input]
        if hook:
            hook(n, inputs)
        env[n.output[0]] = OPS[n.op_type](inputs, attrs(n))
    return env


def backward(nodes, env, output, seed):
    """Reverse mode over the ops that follow the Grad-CAM layer: d(seed . output)/d(every tensor)."""
    grads = {output: seed}
    for n in reversed(nodes):
        g = grads.get(n.output[0])
        if g is None:
            continue
        x, a = env[n.input[0]], attrs(n)
        if n.op_type in ("Flatten", "Dropout"):
            dx = g.reshape(x.shape)
        elif n.op_type == "Relu":
            dx = g * (x > 0)
        elif n.op_type == "GlobalAveragePool":
            dx = np.broadcast_to(g, x.shape) / (x.shape[2] * x.shape[3])
        elif n.op_type == "Gemm":
            assert a.get("transA", 0) == 0 and a.get("transB", 0) == 1
            dx = a.get("alpha", 1.0) * g @ env[n.input[1]]
        else:
            continue  # Not between the layer and the output in these graphs.
        grads[n.input[0]] = grads.get(n.input[0], 0) + dx
    return grads


def reference(m, x):
    """Logits, the Grad-CAM layer and its raw maps for each image of x, one at a time."""
    nodes = list(m.graph.node)
    weights = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in m.graph.initializer}
    output = m.graph.output[0].name
    logits, maps = [], []
    for img in x:
        env = evaluate(nodes, dict(weights, data=img[None].astype(np.float64)))
        # The last layer with spatial axes (rank 4, height and width > 1), as gradcam's default.
        layer = [n.output[0] for n in nodes if env[n.output[0]].ndim == 4 and min(env[n.output[0]].shape[2:]) > 1][-1]
        out = env[output][0]
        top = np.argsort(out)
        assert out[top[-1]] - out[top[-2]] > 1e-3 * np.abs(out).max(), "top class too close to a tie"
        seed = np.zeros((1, CLASSES))
        seed[0, top[-1]] = 1
        g = backward(nodes, env, output, seed)[layer][0]
        act = env[layer][0]
        maps.append(np.tensordot(g.mean(axis=(1, 2)), act, axes=1))
        logits.append(out)
    return np.array(logits, np.float32), np.array(maps, np.float32), layer


# --- The three networks. ---

def vgg16(calibration):
    net = Net(16)
    x, cin, conv, relu = "data", 3, 0, 0
    for block, (convs, c) in enumerate(zip([2, 2, 3, 3, 3], [4, 4, 8, 8, 8])):
        for _ in range(convs):
            x = net.relu(net.conv(x, f"vgg0_conv{conv}", cin, c, 3, pad=1, bias=True), f"vgg0_relu{relu}_fwd")
            cin, conv, relu = c, conv + 1, relu + 1
        x = net.maxpool(x, f"vgg0_pool{block}_fwd", 2, 2, 0)
    hidden = 8
    # Each MXNet Dense with flatten=True exports as Flatten + Gemm; flatten_70 is the real file's name for the last.
    x = net.dense(x, "vgg0_dense0", "flatten_60", cin * 7 * 7, hidden, np.sqrt(2.0 / (cin * 49)))
    x = net.node("Dropout", [net.relu(x, "vgg0_dense0_relu_fwd")], "vgg0_dropout0_fwd", ratio=0.5)
    x = net.dense(x, "vgg0_dense1", "flatten_65", hidden, hidden, np.sqrt(2.0 / hidden))
    x = net.node("Dropout", [net.relu(x, "vgg0_dense1_relu_fwd")], "vgg0_dropout1_fwd", ratio=0.5)
    x = net.dense(x, "vgg0_dense2", "flatten_70", hidden, CLASSES, 1.0)
    return net.model("vgg16-7-lookalike", 1, x, calibration)


def resnet18_v2(calibration):
    net, p = Net(18), "resnetv22_"
    x = net.bn("data", p + "batchnorm0", 3, affine=False)  # BatchNorm(scale=False, center=False) on the image
    x = net.conv(x, p + "conv0", 3, 4, 7, 2, 3)
    x = net.relu(net.bn(x, p + "batchnorm1", 4), p + "relu0_fwd")
    x = net.maxpool(x, p + "pool0_fwd", 3, 2, 1)
    cin = 4
    for stage, c in enumerate([4, 4, 8, 8], start=1):
        s, stride = f"{p}stage{stage}_", 1 if stage == 1 else 2
        act = net.relu(net.bn(x, s + "batchnorm0", cin), s + "activation0")
        residual = x if stage == 1 else net.conv(act, s + "conv2", cin, c, 1, stride)  # projects the activated input
        y = net.conv(act, s + "conv0", cin, c, 3, stride, 1)
        y = net.relu(net.bn(y, s + "batchnorm1", c), s + "activation1")
        y = net.conv(y, s + "conv1", c, c, 3, 1, 1)
        x, cin = net.node("Add", [y, residual], s + "_plus0"), c
    x = net.relu(net.bn(x, p + "batchnorm2", cin), p + "relu1_fwd")
    x = net.node("GlobalAveragePool", [x], p + "pool1_fwd")
    x = net.dense(x, p + "dense0", p + "flatten0_flatten0", cin, CLASSES, 1.0)
    return net.model("resnet18-v2-7-lookalike", "N", x, calibration)


def resnet50_v1(calibration):
    net, p = Net(50), "resnetv17_"
    x = net.conv("data", p + "conv0", 3, 4, 7, 2, 3)
    x = net.relu(net.bn(x, p + "batchnorm0", 4), p + "relu0_fwd")
    x = net.maxpool(x, p + "pool0_fwd", 3, 2, 1)
    cin = 4
    for stage, (blocks, c) in enumerate(zip([2, 1, 1, 1], [8, 8, 12, 12]), start=1):
        s, mid = f"{p}stage{stage}_", c // 4
        conv = bn = relu = 0
        for block in range(blocks):
            stride = 2 if stage > 1 and block == 0 else 1

            def unit(y, ci, co, k, st, pad, bias=False, act=True):
                nonlocal conv, bn, relu
                y = net.bn(net.conv(y, f"{s}conv{conv}", ci, co, k, st, pad, bias), f"{s}batchnorm{bn}", co)
                conv, bn = conv + 1, bn + 1
                if act:
                    y, relu = net.relu(y, f"{s}relu{relu}_fwd"), relu + 1
                return y

            y = unit(x, cin, mid, 1, stride, 0, bias=True)  # Gluon's BottleneckV1 keeps this conv's bias
            y = unit(y, mid, mid, 3, 1, 1)
            y = unit(y, mid, c, 1, 1, 0, act=False)
            residual = x if block > 0 else unit(x, cin, c, 1, stride, 0, act=False)
            x = net.node("Add", [y, residual], f"{s}_plus{block}")
            x, cin = net.relu(x, f"{s}activation{block}"), c
    x = net.node("GlobalAveragePool", [x], p + "pool1_fwd")
    x = net.dense(x, p + "dense0", "flatten_473", cin, CLASSES, 1.0)
    return net.model("resnet50-v1-7-lookalike", "N", x, calibration)


def test_input():
    """Two images of noise, each with a bright blob of its own colour and place,
    so that their classes and maps differ."""
    rng = np.random.default_rng(224)
    x = 0.5 * rng.standard_normal((2, 3, 224, 224))
    yy, xx = np.mgrid[0:224, 0:224]
    for i, (cy, cx, colour) in enumerate([(60, 70, [6, -3, 1.5]), (160, 150, [-3, 1.5, 6])]):
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 30.0 ** 2))
        x[i] += np.array(colour)[:, None, None] * blob
    return x.astype(np.float32)


def opset12(build):
    """The zoo made its opset-12 files from the opset-7 ones with ONNX's
    version converter (Dropout's ratio becomes an input, and so on)."""
    def converted(calibration):
        m = version_converter.convert_version(build(calibration), 12)
        onnx.checker.check_model(m)
        return m
    return converted


def main():
    os.makedirs(OUT, exist_ok=True)
    x = test_input()
    calibration = np.random.default_rng(7).standard_normal((2, 3, 224, 224))
    np.save(os.path.join(OUT, "input.npy"), x)
    for name, build in [("vgg16-7", vgg16), ("resnet18-v2-7", resnet18_v2), ("resnet50-v1-7", resnet50_v1),
                        ("vgg16-12", opset12(vgg16)), ("resnet50-v1-12", opset12(resnet50_v1))]:
        m = build(calibration)
        path = os.path.join(OUT, name + "-lookalike.onnx")
        onnx.save(m, path)
        size = os.path.getsize(path)
        assert size < MAX_BYTES, f"{path}: {size} bytes"
        m = onnx.load(path)  # The reference reads what was written.
        logits, maps, layer = reference(m, x)
        np.save(os.path.join(OUT, name + "-lookalike.logits.npy"), logits)
        np.save(os.path.join(OUT, name + "-lookalike.gradcam_raw.npy"), maps)
        with open(os.path.join(OUT, name + "-lookalike.layer.txt"), "w") as f:
            f.write(layer + "\n")
        print(f"{path}: {size} bytes, {len(m.graph.node)} nodes, logits in [{logits.min():.3g}, {logits.max():.3g}], "
              f"top classes {logits.argmax(axis=1)}, Grad-CAM layer {layer} {maps.shape[1:]}")


if __name__ == "__main__":
    main()
