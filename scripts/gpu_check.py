"""The Python side of scripts/gpu-check.sh (run with PYTHONPATH=.torch).

  gpu_check.py data  --dir DIR --rows N          writes the check's data set: train.csv, val.csv
                                                 (what Strata reads) and train.pt, val.pt (the
                                                 same rows as tensors, what the PyTorch loop reads)
  gpu_check.py torch --dir DIR --device cuda:0 --epochs E --hidden 256,256 --batch B --lr LR --seed S
                                                 trains the same model in a plain PyTorch loop on
                                                 the device and prints one JSON line:
                                                 {"seconds", "val_loss", "val_accuracy", "peak_mib"}

The data: 10 classes of 64 features around a random centre each, unit noise (as the benchmark's
tabular set); 20 % more rows for validation. The loop is the fast idiom (tensors on the device, a
fresh permutation per epoch, batches by index, Adam), timed from moving the rows to the device to
the last epoch's validation, synchronised with the device.
"""

import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch import nn

FEATURES = 64
CLASSES = 10


def make_data(args):
    generator = torch.Generator().manual_seed(7)
    centres = 0.45 * torch.randn(CLASSES, FEATURES, generator=generator)

    def part(rows):
        labels = torch.arange(rows) % CLASSES
        features = centres[labels] + torch.randn(rows, FEATURES, generator=generator)
        return features.float(), labels

    for name, rows in (("train", args.rows), ("val", args.rows // 5)):
        x, y = part(rows)
        torch.save({"x": x, "y": y}, f"{args.dir}/{name}.pt")
        with open(f"{args.dir}/{name}.csv", "w") as out:
            out.write(",".join(f"f{i}" for i in range(FEATURES)) + ",class\n")
            for row, label in zip(x.tolist(), y.tolist()):
                out.write(",".join(repr(v) for v in row) + f",{label}\n")


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_loop(args):
    device = torch.device(args.device)
    train, val = torch.load(f"{args.dir}/train.pt"), torch.load(f"{args.dir}/val.pt")
    started = time.perf_counter()
    x, y = train["x"].to(device), train["y"].to(device)
    vx, vy = val["x"].to(device), val["y"].to(device)
    mean, std = x.mean(0, keepdim=True), x.std(0, keepdim=True)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    x, vx = (x - mean) / std, (vx - mean) / std
    torch.manual_seed(args.seed)
    sizes = [FEATURES] + [int(h) for h in args.hidden.split(",")]
    layers = []
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(sizes[-1], CLASSES)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(args.seed)
    rows = x.shape[0]
    val_loss = val_accuracy = float("nan")
    for _ in range(args.epochs):
        model.train()
        order = torch.randperm(rows, generator=generator).to(device)
        for start in range(0, rows, args.batch):
            idx = order[start : start + args.batch]
            optimizer.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            output = model(vx)
            val_loss = F.cross_entropy(output, vy).item()
            val_accuracy = (output.argmax(1) == vy).float().mean().item()
    sync(device)
    peak = (
        torch.cuda.max_memory_reserved(device) / 2**20 if device.type == "cuda" else 0.0
    )
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "val_loss": val_loss,
                "val_accuracy": val_accuracy,
                "peak_mib": peak,
                "torch": torch.__version__,
            }
        )
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["data", "torch"])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--rows", type=int, default=40000)
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--hidden", default="256,256")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.what == "data":
        make_data(args)
    else:
        train_loop(args)


if __name__ == "__main__":
    main()
