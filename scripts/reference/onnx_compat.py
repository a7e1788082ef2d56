"""Exports small random-weight PyTorch models with the traits of real exports
that onnx-gomlx v0.5.13 refuses as is, for models/onnx_compat_test.go.

Usage: /usr/bin/python3 onnx_compat.py OUTDIR

For each case NAME it writes NAME.onnx, NAME_input.npy and NAME_logits.npy
(PyTorch's logits for that input) and NAME_grad.npy (the gradient of
sum_k (k+1)*logits[k] with respect to the input):

  init_inputs_op7, init_inputs_op9: keep_initializers_as_inputs=True at
      opset 7 and 9 (IR 3 and 4), every weight also a graph input.
  dropout_op13, dropout_op7: nn.Dropout in eval mode. torch 1.13 drops eval
      Dropout while exporting, so the Dropout nodes older exporters wrote
      (the ONNX model zoo's VGG and SqueezeNet have them) are put back in the
      ONNX graph where nn.Dropout sits; with opset 13 one also has an unused
      mask output.
  dropout_mask: as dropout_op13, with the mask also a graph output (refused).
  ceil_pool: MaxPool2d(3, 2, ceil_mode=True) on 14x14 (ceil 7, floor 6) fed by
      a convolution without ReLU (negative values, so padding must not win),
      then AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False) on 7x7.
  squeezenet: torchvision squeezenet1_1 at 72x72, whose last ceil MaxPool
      sees 8x8 (ceil 4, floor 3).
  identity_op17: two LayerNorms over channels with equal (initial) weights,
      which torch's exporter writes once and copies with Identity nodes, as
      in ConvNeXt at opset 17; the fused LayerNormalization's gradient reaches them.
  pad_omitted: F.pad, whose Pad node torch writes with its omitted
      constant_value as a trailing empty input name (as in swin_t).
  attrs_op9: ReLU6, F.pad and a slice at opset 9, where Clip, Pad and
      Slice take their arguments as attributes (ReLU6 as in MobileNetV2, a
      Pad as in DenseNet and Inception at opsets 7 and 9).
  any_size: torchvision resnet18 with dynamic height and width, for a
      32x40 image (as pytorch-grad-cam's own tests run it).
  fixed_flatten, fixed_reshape: every case is exported at batch 1 without
      dynamic axes, so the input fixes the batch at 1; these two give a
      batch of 2 images, through torch.flatten (the graph takes any batch) and
      through x.reshape(1, -1) (the graph only takes batch 1).
"""
import os
import sys
import warnings

import numpy as np
import onnx
import torch
import torch.nn as nn
import torchvision
from onnx import helper, numpy_helper

warnings.filterwarnings("ignore")
torch.set_num_threads(2)
out = sys.argv[1]


class Small(nn.Module):
    def __init__(self, dropout=False):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.drop = nn.Dropout(0.5) if dropout else nn.Identity()
        self.fc = nn.Linear(8 * 8 * 8, 5)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn(self.conv1(x))))
        x = torch.relu(self.conv2(x))
        return self.fc(self.drop(torch.flatten(x, 1)))


class CeilPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.max = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.avg = nn.AvgPool2d(2, stride=2, ceil_mode=True, count_include_pad=False)
        self.fc = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.avg(self.max(self.conv(x))), 1))


class LayerNorms(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.ln1 = nn.LayerNorm(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.ln2 = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.ln1(self.conv1(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = self.ln2(self.conv2(torch.relu(x)).permute(0, 2, 3, 1))
        return self.fc(x.mean((1, 2)))


class Padded(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3)
        self.fc = nn.Linear(6 * 13 * 13, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.conv(nn.functional.pad(x, (0, 1, 0, 1))), 1))


class Attrs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3)
        self.fc = nn.Linear(6 * 13 * 12, 5)

    def forward(self, x):
        x = nn.functional.relu6(self.conv(nn.functional.pad(x, (0, 1, 0, 1))) * 4)
        return self.fc(torch.flatten(x[:, :, :, 1:], 1))


class Reshaped(Small):
    def forward(self, x):
        x = self.pool(torch.relu(self.bn(self.conv1(x))))
        return self.fc(torch.relu(self.conv2(x)).reshape(1, -1))


class ImagePooling(nn.Module):
    """DeepLabV3's ASPP image pooling: a global average, a 1x1 conv, and an
    upsampling of the one-pixel map back to the features' size."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.pool_conv = nn.Conv2d(6, 4, 1)
        self.fc = nn.Linear(10, 5)

    def forward(self, x):
        f = torch.relu(self.conv(x))
        p = torch.relu(self.pool_conv(nn.functional.adaptive_avg_pool2d(f, 1)))
        p = nn.functional.interpolate(p, size=f.shape[-2:], mode="bilinear", align_corners=False)
        return self.fc(torch.cat([f, p * f[:, :4]], dim=1).mean(dim=(2, 3)))


def randomize_bn(model):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


def export(name, model, size, batch=1, **kw):
    """Exports model at batch 1 and saves its logits and input gradient for
    batch images (the gradient for each image alone, summed)."""
    model.eval()
    x = torch.randn(batch, 3, size, size, requires_grad=True)
    y = torch.cat([model(x[i : i + 1]) for i in range(batch)])
    (y * torch.arange(1, y.shape[1] + 1)).sum().backward()
    logits = y.detach().numpy()
    np.save(os.path.join(out, name + "_grad.npy"), x.grad.numpy())
    x = x.detach()
    path = os.path.join(out, name + ".onnx")
    torch.onnx.export(model, x[:1], path, input_names=["input"], output_names=["logits"], **kw)
    np.save(os.path.join(out, name + "_input.npy"), x.numpy())
    np.save(os.path.join(out, name + "_logits.npy"), logits)
    return path


def insert_dropout(path, opset, mask_output=False):
    """Puts a Dropout before the Gemm, where nn.Dropout was."""
    m = onnx.load(path)
    g = m.graph
    i = next(i for i, n in enumerate(g.node) if n.op_type == "Gemm")
    gemm = g.node[i]
    src = gemm.input[0]
    gemm.input[0] = "dropped"
    if opset >= 12:
        g.initializer.append(numpy_helper.from_array(np.array(0.5, np.float32), "drop_ratio"))
        node = helper.make_node("Dropout", [src, "drop_ratio"], ["dropped", "drop_mask"], name="/drop/Dropout")
    else:
        node = helper.make_node("Dropout", [src], ["dropped", "drop_mask"], name="/drop/Dropout", ratio=0.5)
    g.node.insert(i, node)
    if mask_output:
        g.output.append(helper.make_tensor_value_info("drop_mask", onnx.TensorProto.BOOL, [1, 512]))
    onnx.checker.check_model(m)
    onnx.save(m, path)


torch.manual_seed(0)
small = Small()
randomize_bn(small)
for opset in (7, 9):
    export("init_inputs_op%d" % opset, small, 16, opset_version=opset, keep_initializers_as_inputs=True)

torch.manual_seed(1)
drop = Small(dropout=True)
randomize_bn(drop)
insert_dropout(export("dropout_op13", drop, 16, opset_version=13), 13)
insert_dropout(export("dropout_op7", drop, 16, opset_version=7), 7)
insert_dropout(export("dropout_mask", drop, 16, opset_version=13), 13, mask_output=True)

torch.manual_seed(2)
export("ceil_pool", CeilPool(), 14, opset_version=13)

torch.manual_seed(3)
export("squeezenet", torchvision.models.squeezenet1_1(), 72, opset_version=13)

torch.manual_seed(4)
export("identity_op17", LayerNorms(), 12, opset_version=17)
assert any(n.op_type == "Identity" for n in onnx.load(os.path.join(out, "identity_op17.onnx")).graph.node)

torch.manual_seed(5)
path = export("pad_omitted", Padded(), 14, opset_version=13)
assert next(n for n in onnx.load(path).graph.node if n.op_type == "Pad").input[-1] == ""

torch.manual_seed(7)
path = export("attrs_op9", Attrs(), 14, opset_version=9)
ops = {n.op_type: n for n in onnx.load(path).graph.node}
assert all(any(a.name == name for a in ops[op].attribute) for op, name in (("Clip", "max"), ("Pad", "pads"), ("Slice", "starts")))

torch.manual_seed(9)
path = export("image_pooling", ImagePooling(), 12, opset_version=13)
assert any(n.op_type == "Resize" for n in onnx.load(path).graph.node)

torch.manual_seed(8)
resnet = torchvision.models.resnet18(num_classes=7)
randomize_bn(resnet)
resnet.eval()
x = torch.randn(1, 3, 32, 40, requires_grad=True)
y = resnet(x)
(y * torch.arange(1, y.shape[1] + 1)).sum().backward()
torch.onnx.export(resnet, x.detach(), os.path.join(out, "any_size.onnx"), input_names=["input"], output_names=["logits"],
                  opset_version=13, dynamic_axes={"input": {0: "N", 2: "H", 3: "W"}})
np.save(os.path.join(out, "any_size_input.npy"), x.detach().numpy())
np.save(os.path.join(out, "any_size_logits.npy"), y.detach().numpy())
np.save(os.path.join(out, "any_size_grad.npy"), x.grad.numpy())

torch.manual_seed(6)
fixed = Small()
randomize_bn(fixed)
export("fixed_flatten", fixed, 16, batch=2, opset_version=13)
reshaped = Reshaped()
reshaped.load_state_dict(fixed.state_dict())
export("fixed_reshape", reshaped, 16, batch=2, opset_version=13)
print("ok")
