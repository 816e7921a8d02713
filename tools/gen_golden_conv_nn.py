#!/usr/bin/python3
"""Writes tests/golden/conv_nn.json: PyTorch reference vectors for the convolutional modules and
blocks of src/nn (conv_layers.c, norm.c's BatchNorm2d, blocks.c).

Regenerate from the repository root with Debian's python3-torch (not a virtualenv's python):

    /usr/bin/python3 tools/gen_golden_conv_nn.py

Each case names a module that tests/test_conv_nn.c builds the same way.  It holds the module's
parameters and buffers by torch's state_dict names (named_parameters() / named_buffers() order),
its parameter count, its repr (str(module)), whether it runs in training mode, and steps: the
input, a random R, torch's output, the gradients of sum(out * R) with respect to the input and to
every parameter (zeroed before each step), and the buffers after the forward.

Parameters and inputs are drawn in float32 and the module then runs in float64, so the stored
values are exact in the C library's float32 and the references carry no float32 rounding of
their own.  Numbers are written with 9 significant digits (exact for a float32).

torchvision is not needed: BasicBlock and Bottleneck are written here with torchvision's child
names and forward (ReLU without inplace, so the repr reads "ReLU()" as the C library's).
"""
import json
import os

import torch
from torch import nn

torch.manual_seed(0)


# ---- the blocks, as the C library defines them (torch-style names)

def conv_bn(cin, cout, k, stride=1, groups=1):
    return nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)


class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock (expansion 1)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = conv_bn(cin, cout, 3, stride)
        self.relu = nn.ReLU()
        self.conv2, self.bn2 = conv_bn(cout, cout, 3)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(*conv_bn(cin, cout, 1, stride))

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision.models.resnet.Bottleneck (expansion 4, stride on the 3x3 conv)."""

    def __init__(self, cin, mid, stride):
        super().__init__()
        self.conv1, self.bn1 = conv_bn(cin, mid, 1)
        self.conv2, self.bn2 = conv_bn(mid, mid, 3, stride)
        self.conv3, self.bn3 = conv_bn(mid, 4 * mid, 1)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or cin != 4 * mid:
            self.downsample = nn.Sequential(*conv_bn(cin, 4 * mid, 1, stride))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class MobileNetBlock(nn.Module):
    """Depthwise 3x3 (stride) - BN - ReLU - pointwise 1x1 - BN - ReLU."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = conv_bn(cin, cin, 3, stride, groups=cin)
        self.conv2, self.bn2 = conv_bn(cin, cout, 1)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))


def double_conv(cin, cout):
    return nn.Sequential(*conv_bn(cin, cout, 3), nn.ReLU(), *conv_bn(cout, cout, 3), nn.ReLU())


class UNet(nn.Module):
    def __init__(self, cin, cout, base, depth):
        super().__init__()
        self.enc = nn.ModuleList([double_conv(cin if i == 0 else base << (i - 1), base << i)
                                  for i in range(depth)])
        self.pool = nn.MaxPool2d(2)
        self.bottom = double_conv(base << (depth - 1), base << depth)
        self.up = nn.ModuleList([nn.ConvTranspose2d(base << (depth - i), base << (depth - i - 1), 2, stride=2)
                                 for i in range(depth)])
        self.dec = nn.ModuleList([double_conv(2 * (base << (depth - i - 1)), base << (depth - i - 1))
                                  for i in range(depth)])
        self.head = nn.Conv2d(base, cout, 1)

    def forward(self, x):
        skips = []
        for enc in self.enc:
            x = enc(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for i, (up, dec) in enumerate(zip(self.up, self.dec)):
            x = dec(torch.cat([skips[-1 - i], up(x)], 1))
        return self.head(x)


# ---- helpers (as tools/gen_golden_nn.py)

def f32(t):
    """Rounds to float32 and back, so the C side loads the very same values."""
    return t.float().double()


def tensor_json(t):
    t = t.detach().double()
    return {"shape": list(t.shape), "data": [float("%.9g" % v) for v in t.flatten().tolist()]}


def randomise(module):
    """Replaces every parameter by float32 draws, BatchNorm weights near 1."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("weight") and p.dim() == 1:
                p.copy_(1 + 0.5 * torch.randn(p.shape))
            else:
                p.copy_(0.5 * torch.randn(p.shape))


def random_running_stats(module):
    with torch.no_grad():
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.3 * torch.randn(b.shape))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape))


def case(name, module, inputs, train=True, randomise_params=True):
    """Runs module (in float64) on each input in turn and records the steps."""
    if randomise_params:
        randomise(module)
    text = str(module)
    module = module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(f32(p))
        for b in module.buffers():
            if b.is_floating_point():
                b.copy_(f32(b))
    module.train(train)
    out = {
        "name": name,
        "train": train,
        "repr": text,
        "num_elements": sum(p.numel() for p in module.parameters()),
        "params": [dict(name=n, **tensor_json(p)) for n, p in module.named_parameters()],
        "buffers": [dict(name=n, **tensor_json(b)) for n, b in module.named_buffers()],
        "steps": [],
    }
    for x in inputs:
        x = f32(x).requires_grad_(True)
        for p in module.parameters():
            p.grad = None
        y = module(x)
        r = f32(torch.randn(y.shape))
        (y * r).sum().backward()
        out["steps"].append({
            "input": tensor_json(x),
            "R": tensor_json(r),
            "output": tensor_json(y),
            "grad_input": tensor_json(x.grad),
            "grads": [dict(name=n, **tensor_json(p.grad)) for n, p in module.named_parameters()],
            "buffers": [dict(name=n, **tensor_json(b)) for n, b in module.named_buffers()],
        })
    return out


def randn(*shape):
    return torch.randn(shape)


cases = []

# ---- layers
cases.append(case("conv2d_pad1", nn.Conv2d(3, 4, 3, padding=1), [randn(2, 3, 5, 5)]))
cases.append(case("conv2d_stride_dilation_groups",
                  nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2),
                  [randn(2, 4, 7, 6)]))
cases.append(case("conv2d_same_no_bias", nn.Conv2d(2, 3, 3, padding="same", dilation=2, bias=False),
                  [randn(2, 2, 6, 5)]))
cases.append(case("conv2d_unbatched", nn.Conv2d(2, 3, 2), [randn(2, 4, 4)]))
cases.append(case("conv_transpose2d",
                  nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1), [randn(2, 4, 3, 3)]))
cases.append(case("conv_transpose2d_groups", nn.ConvTranspose2d(4, 6, 2, stride=2, groups=2),
                  [randn(1, 4, 3, 2)]))
cases.append(case("maxpool2d", nn.MaxPool2d(2), [randn(2, 3, 6, 5)]))
cases.append(case("maxpool2d_stride_pad", nn.MaxPool2d(3, stride=2, padding=1), [randn(1, 2, 7, 7)]))
cases.append(case("avgpool2d", nn.AvgPool2d(2), [randn(2, 3, 6, 5)]))
cases.append(case("avgpool2d_exclude_pad", nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
                  [randn(1, 2, 4, 4)]))
cases.append(case("global_avgpool2d", nn.AdaptiveAvgPool2d(1), [randn(2, 3, 4, 5)]))
cases.append(case("upsample_nearest", nn.Upsample(scale_factor=2), [randn(1, 2, 3, 3)]))
cases.append(case("upsample_bilinear", nn.Upsample(scale_factor=2, mode="bilinear"), [randn(1, 2, 3, 4)]))
cases.append(case("dropout2d_eval", nn.Dropout2d(0.5), [randn(2, 3, 4, 4)], train=False))
cases.append(case("unflatten", nn.Unflatten(1, (2, 3, 4)), [randn(2, 24)]))

# ---- BatchNorm2d: two training steps (running statistics, num_batches_tracked), then eval
cases.append(case("bn2d_train", nn.BatchNorm2d(3), [randn(2, 3, 4, 5), 2 + 3 * randn(4, 3, 2, 3)]))
bn_eval = nn.BatchNorm2d(3)
random_running_stats(bn_eval)
cases.append(case("bn2d_eval", bn_eval, [randn(2, 3, 4, 4)], train=False))
cases.append(case("bn2d_no_affine_train", nn.BatchNorm2d(3, affine=False), [randn(2, 3, 3, 3)]))
cases.append(case("bn2d_eps_momentum_train", nn.BatchNorm2d(2, eps=1e-3, momentum=0.3),
                  [randn(3, 2, 3, 3), randn(3, 2, 3, 3)]))

# ---- blocks
cases.append(case("basic_identity", BasicBlock(3, 3, 1), [randn(2, 3, 4, 4), randn(2, 3, 4, 4)]))
cases.append(case("basic_downsample", BasicBlock(2, 4, 2), [randn(2, 2, 5, 5)]))
basic_eval = BasicBlock(2, 4, 2)
random_running_stats(basic_eval)
cases.append(case("basic_downsample_eval", basic_eval, [randn(2, 2, 4, 4)], train=False))
cases.append(case("bottleneck", Bottleneck(4, 2, 1), [randn(2, 4, 4, 4)]))
cases.append(case("bottleneck_identity", Bottleneck(8, 2, 1), [randn(2, 8, 3, 3)]))
cases.append(case("bottleneck_stride2", Bottleneck(4, 2, 2), [randn(2, 4, 5, 5)]))
cases.append(case("mobilenet", MobileNetBlock(3, 5, 2), [randn(2, 3, 5, 5)]))
cases.append(case("unet", UNet(1, 2, 2, 2), [randn(1, 1, 16, 16)]))

# ---- a small CNN the way a model file writes one
cases.append(case("small_cnn", nn.Sequential(
    nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    nn.Linear(6, 3)), [randn(2, 64)]))

# reprs of default-initialised modules the test builds without a golden run
reprs = {
    "lenet": str(nn.Sequential(nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                               nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                               nn.Linear(1568, 128), nn.ReLU(), nn.Linear(128, 10))),
    "conv_transpose_dilated": str(nn.ConvTranspose2d(4, 6, 2, stride=2, output_padding=1, dilation=2)),
    "maxpool_rect": str(nn.MaxPool2d((2, 3), padding=1, ceil_mode=True)),
    "dropout2d": str(nn.Dropout2d(0.25)),
    "unflatten_1": str(nn.Unflatten(1, (784,))),
}
counts = {
    "lenet": sum(p.numel() for p in nn.Sequential(nn.Conv2d(1, 16, 5, padding=2), nn.Conv2d(16, 32, 5, padding=2),
                                                  nn.Linear(1568, 128), nn.Linear(128, 10)).parameters()),
    "resnet18_layer1_block": sum(p.numel() for p in BasicBlock(64, 64, 1).parameters()),
    "resnet50_layer2_first": sum(p.numel() for p in Bottleneck(256, 128, 2).parameters()),
    "unet_3_1_8_3": sum(p.numel() for p in UNet(3, 1, 8, 3).parameters()),
}

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden", "conv_nn.json")
with open(path, "w") as f:
    json.dump({"generator": "tools/gen_golden_conv_nn.py, torch " + torch.__version__, "cases": cases,
               "reprs": reprs, "counts": counts}, f, separators=(",", ":"))
print("wrote %s: %d cases, %d bytes" % (os.path.normpath(path), len(cases), os.path.getsize(path)))
