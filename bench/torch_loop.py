"""The PyTorch side of scripts/bench.sh: the training loop a user would write in Python.

A worker: reads one JSON job per line on stdin, trains it, and answers one JSON line on stdout
({"seconds", "val_loss", "val_accuracy"} or {"error"}), so the benchmark can alternate it with
Strata without paying for `import torch` each time.

The loop is the fast idiom, not a DataLoader: the data as two tensors, a fresh permutation per
epoch, batches by index, torch.optim.Adam with a parameter group per rate, and the validation loss
and accuracy after every epoch. Timed (wall and process CPU time) from loading the raw arrays (a memory copy, far cheaper than
the CSV Strata parses) to the last epoch's validation. The model is built after
torch.manual_seed(seed) from nn.Linear layers, so it starts from Strata's initial weights.
"""

import json
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn


def load(prefix, rows, features):
    x = torch.from_file(prefix + ".x.f32", size=rows * features, dtype=torch.float32)
    y = torch.from_file(prefix + ".y.i64", size=rows, dtype=torch.int64)
    return x.view(rows, features), y


def train(job):
    torch.set_num_threads(job["threads"])
    features, classes = job["features"], job["classes"]
    started, cpu_started = time.perf_counter(), time.process_time()
    x, y = load(job["train_prefix"], job["train_rows"], features)
    vx, vy = load(job["val_prefix"], job["val_rows"], features)
    mean = x.mean(0, keepdim=True)
    std = x.std(0, keepdim=True)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    x, vx = (x - mean) / std, (vx - mean) / std

    torch.manual_seed(job["seed"])
    sizes = [features] + job["hidden"]
    layers = []
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(sizes[-1], classes))
    first = list(model[0].parameters())
    rest = [p for layer in list(model)[1:] for p in layer.parameters()]
    optimizer = torch.optim.Adam(
        [{"params": first, "lr": job["layer0_lr"]}, {"params": rest}], lr=job["lr"]
    )

    generator = torch.Generator().manual_seed(job["seed"])
    rows, batch = x.shape[0], job["batch_size"]
    val_loss = val_accuracy = float("nan")
    for _ in range(job["epochs"]):
        model.train()
        order = torch.randperm(rows, generator=generator)
        total = 0.0
        for start in range(0, rows, batch):
            idx = order[start : start + batch]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * idx.shape[0]
        model.eval()
        with torch.no_grad():
            output = model(vx)
            val_loss = F.cross_entropy(output, vy).item()
            val_accuracy = (output.argmax(1) == vy).float().mean().item()
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu_started,
        "val_loss": val_loss,
        "val_accuracy": val_accuracy,
        "train_loss": total / rows,
    }


def main():
    print(json.dumps({"ready": torch.__version__}), flush=True)
    for line in sys.stdin:
        try:
            answer = train(json.loads(line))
        except Exception as error:  # the benchmark reports it and goes on
            answer = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
