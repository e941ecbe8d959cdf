"""A classifier trained in plain torch, without oodscope: the starting point of "your own model".

A small residual network with torchvision's module names (conv1, bn1, layer1..layer4, avgpool, fc)
is trained on the MNIST digits 0-5 (the in-distribution classes of oodscope's split-mnist protocol;
it holds out 10 % of their training images, drawn with its own seed, as that protocol holds out a
validation split — not necessarily the same images) and exported twice:

* ``OUT/resnet.pt2``: a ``torch.export`` program with a batch axis of any size, which
  ``oodscope fit --model`` reads;
* ``OUT/resnet.pt``: only the weights (``state_dict``), for the Python API, where you build the
  module yourself and pass it (``ModelAdapter(TinyResNet(), ...)`` after ``load_state_dict``);
* ``OUT/resnet.onnx``: an ONNX file with a batch axis of any size (when the onnx package is
  installed), which ``oodscope fit --model`` reads too.

    python examples/train_resnet.py --mnist ../shared/data/mnist --out runs/example --seed 0

The MNIST files are the four original ``*-ubyte.gz`` files of the folder given.
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np
import torch
from torch import nn


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


class TinyResNet(nn.Module):
    """ResNet-10-like, widths 16/32/64/128, for 28x28 grey images."""

    def __init__(self, classes: int = 6, channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1, self.layer2 = Block(16, 16, 1), Block(16, 32, 2)
        self.layer3, self.layer4 = Block(32, 64, 2), Block(64, 128, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(128, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mnist", required=True, help="folder with MNIST's four *-ubyte.gz files")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--classes", type=int, default=6, help="train on digits 0..classes-1")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    root = Path(args.mnist)
    x = read_idx(root / "train-images-idx3-ubyte.gz")
    y = read_idx(root / "train-labels-idx1-ubyte.gz").astype(np.int64)
    keep = y < args.classes
    x, y = x[keep], y[keep]
    order = np.random.default_rng(args.seed).permutation(len(x))
    train = order[len(x) // 10:]  # 10 % held out, as split-mnist holds out a validation split
    xt = torch.as_tensor(x[train], dtype=torch.float32).unsqueeze(1) / 255
    yt = torch.as_tensor(y[train])
    model = TinyResNet(args.classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    steps = args.epochs * (len(xt) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total_steps=steps)
    model.train()
    g = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        perm = torch.randperm(len(xt), generator=g)
        for i in range(len(xt) // 128):
            idx = perm[i * 128:(i + 1) * 128]
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}/{args.epochs} done")
    model.eval()
    xs = read_idx(root / "t10k-images-idx3-ubyte.gz")
    ys = read_idx(root / "t10k-labels-idx1-ubyte.gz")
    inside = ys < args.classes
    with torch.no_grad():
        pred = torch.cat([model(torch.as_tensor(xs[inside][i:i + 1000], dtype=torch.float32).unsqueeze(1) / 255).argmax(1)
                          for i in range(0, int(inside.sum()), 1000)])
    print(f"test accuracy on digits 0-{args.classes - 1}: {100 * float((pred.numpy() == ys[inside]).mean()):.2f} %")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / "resnet.pt")
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(model, (torch.rand(2, 1, 28, 28),), dynamic_shapes=({0: batch},))
    torch.export.save(program, out / "resnet.pt2")
    print(f"wrote {out / 'resnet.pt2'} and {out / 'resnet.pt'}")
    export_onnx(model, out / "resnet.onnx")


def export_onnx(model: nn.Module, path: Path) -> None:
    """The model as an ONNX file with a batch axis of any size (needs the onnx package)."""
    try:
        torch.onnx.export(model, (torch.rand(2, 1, 28, 28),), str(path), input_names=["images"], output_names=["logits"],
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    except ImportError as e:
        print(f"not written: {path} ({e}; pip install onnx)")
        return
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
