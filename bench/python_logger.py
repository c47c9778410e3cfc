"""What the Python logger costs a training loop, on a 25M-parameter MLP (four param groups).

    PYTHONPATH=.torch:clients/python python3 bench/python_logger.py [--device cuda] [--addr HOST:PORT]

Measures, on one device, each the median of `--repeats` epochs of `--steps` steps of 64 rows
with Adam (after a warm-up epoch):
- the plain epoch;
- the same epoch with the group statistics measured (the step pre-hook sampling gradient norms,
  then `take()` at its end and its figures read as the background thread reads them): the
  overhead, and `take()` with the reading alone;
- the 0.1 logger's way for comparison: a copy of every parameter on the device, differences in
  float64 on the device;
- the logger end to end (`log()` every step, `log_epoch` each epoch) against `--addr`, or against
  no daemon at all (everything spooled to a temporary folder): each call's time, and the epoch's;
- on a GPU, the device memory the statistics hold beyond the model and optimizer.

Prints a Markdown table, and the figures as JSON with `--json FILE`. Not part of the tests.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import tempfile
import time

import torch
from torch import nn

from strata_client import StrataLogger
from strata_client.stats import GroupStatistics, _step_pre_hook

BATCH = 64


def model_25m() -> nn.Module:
    return nn.Sequential(
        nn.Linear(1024, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(),
        nn.Linear(4096, 1024), nn.ReLU(), nn.Linear(1024, 10),
    )


def optimizer_for(model: nn.Module) -> torch.optim.Optimizer:
    layers = [m for m in model if isinstance(m, nn.Linear)]
    names = ["body0", "body1", "body2", "head"]
    return torch.optim.Adam(
        [{"params": layer.parameters(), "lr": 1e-4 * (i + 1), "name": n} for i, (layer, n) in enumerate(zip(layers, names))]
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_epoch(model, optimizer, data, steps, device, on_step=None) -> float:
    x, y = data
    sync(device)
    started = time.perf_counter()
    for i in range(steps):
        out = model(x[i])
        loss = nn.functional.cross_entropy(out, y[i])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if on_step is not None:
            on_step(i, loss)
    sync(device)
    return time.perf_counter() - started


def read(groups) -> None:
    """What the background thread does with an epoch's figures."""
    for g in groups:
        for key in ("grad_norm", "weight_norm", "update_ratio"):
            float(g[key])


def old_way(optimizer, before) -> None:
    """The 0.1 logger: ‖w − w_prev‖ in float64 on the device, then a fresh device copy."""
    with torch.no_grad():
        for group, snap in zip(optimizer.param_groups, before):
            sum(float((p.detach().double() - b.double()).pow(2).sum()) for p, b in zip(group["params"], snap))
            sum(float(b.double().pow(2).sum()) for b in snap)
            sum(float(p.detach().double().pow(2).sum()) for p in group["params"])
        return [[p.detach().clone() for p in g["params"]] for g in optimizer.param_groups]


def dead_addr() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def median(values):
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--addr", default=None, help="a running stratad (default: none: everything is spooled)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = model_25m().to(device)
    optimizer = optimizer_for(model)
    parameters = sum(p.numel() for p in model.parameters())
    data = (
        torch.randn(args.steps, BATCH, 1024, device=device),
        torch.randint(0, 10, (args.steps, BATCH), device=device),
    )
    run_epoch(model, optimizer, data, args.steps, device)  # warm-up (Adam's state allocated)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base_memory = torch.cuda.max_memory_allocated()
    stats = GroupStatistics(optimizer)
    # Plain epochs and epochs with the statistics interleaved, so that the machine's drift falls
    # on both alike.
    plain, with_stats, takes = [], [], []
    for _ in range(args.repeats):
        stats._hook.remove()
        plain.append(run_epoch(model, optimizer, data, args.steps, device))
        stats._hook = _step_pre_hook(optimizer, stats._before_step)
        stats.take()
        elapsed = run_epoch(model, optimizer, data, args.steps, device)
        started = time.perf_counter()
        read(stats.take())
        sync(device)
        took = time.perf_counter() - started
        takes.append(took)
        with_stats.append(elapsed + took)
    # One sampled step's gradient norms (the hook), timed alone.
    hook_calls = []
    for _ in range(args.repeats * 3):
        stats._step_in_epoch = 0
        sync(device)
        started = time.perf_counter()
        stats._before_step(optimizer, (), {})
        sync(device)
        hook_calls.append(time.perf_counter() - started)
    device_memory = torch.cuda.max_memory_allocated() - base_memory if device.type == "cuda" else None
    stats.close()

    before = [[p.detach().clone() for p in g["params"]] for g in optimizer.param_groups]
    old = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        before = old_way(optimizer, before)
        sync(device)
        old.append(time.perf_counter() - started)
    del before

    spool = tempfile.mkdtemp(prefix="strata-bench-spool-")
    logger = StrataLogger(args.addr or dead_addr(), name="logger bench", optimizer=optimizer, model=model,
                          task="classification", classes=10, spool_dir=spool, close_timeout_s=60 if args.addr else 1)
    log_calls, epoch_calls, logged = [], [], []
    step = 0
    for _ in range(args.repeats):
        def on_step(_i, loss):
            nonlocal step
            step += 1
            started = time.perf_counter()
            logger.log(step=step, train_loss=loss.detach())
            log_calls.append(time.perf_counter() - started)

        elapsed = run_epoch(model, optimizer, data, args.steps, device, on_step)
        started = time.perf_counter()
        logger.log_epoch(train_loss=1.0, val_loss=1.0, val_accuracy=0.5)
        took = time.perf_counter() - started
        epoch_calls.append(took)
        logged.append(elapsed + took)
    report = logger.close()

    epoch_s = median(plain)
    figures = {
        "device": str(device),
        "parameters": parameters,
        "steps_per_epoch": args.steps,
        "epoch_ms": epoch_s * 1e3,
        "epoch_with_statistics_ms": median(with_stats) * 1e3,
        "statistics_overhead": median(with_stats) / epoch_s - 1,
        "take_and_read_ms": median(takes) * 1e3,
        "take_and_read_of_epoch": median(takes) / epoch_s,
        "old_way_ms": median(old) * 1e3,
        "epoch_steps_for_one_percent": median(takes) / 0.01 / (epoch_s / args.steps),
        "hook_sampled_step_ms": median(hook_calls) * 1e3,
        "hook_of_step_amortized": median(hook_calls) / stats.grad_norm_every / (epoch_s / args.steps),
        "log_call_p50_us": median(log_calls) * 1e6,
        "log_call_max_us": max(log_calls) * 1e6,
        "log_epoch_call_ms": median(epoch_calls) * 1e3,
        "epoch_with_logger_ms": median(logged) * 1e3,
        "logger_overhead": median(logged) / epoch_s - 1,
        "statistics_device_bytes": device_memory,
        "daemon": args.addr or "none (spooled)",
        "sent_or_spooled_epochs": report.sent.epochs + report.spooled.epochs,
    }
    rows = [
        ("model", f"{parameters / 1e6:.1f}M parameters, 4 groups, Adam, on {device}"),
        ("epoch (plain)", f"{figures['epoch_ms']:.0f} ms ({args.steps} steps of {BATCH})"),
        ("epoch with group statistics", f"{figures['epoch_with_statistics_ms']:.0f} ms ({figures['statistics_overhead'] * 100:+.2f} %)"),
        ("take() + read, per epoch", f"{figures['take_and_read_ms']:.1f} ms ({figures['take_and_read_of_epoch'] * 100:.2f} % of the epoch)"),
        ("  it is 1 % of an epoch of", f"{figures['epoch_steps_for_one_percent']:.0f} steps of {BATCH}"),
        ("gradient norms of a sampled step (1 in 8)", f"{figures['hook_sampled_step_ms']:.2f} ms: {figures['hook_of_step_amortized'] * 100:.2f} % of a step, amortized"),
        ("0.1 logger's device copy + float64 diffs", f"{figures['old_way_ms']:.1f} ms"),
        ("log() call", f"p50 {figures['log_call_p50_us']:.0f} µs, max {figures['log_call_max_us']:.0f} µs"),
        ("log_epoch() call", f"{figures['log_epoch_call_ms']:.1f} ms"),
        ("epoch with the logger (every step logged)", f"{figures['epoch_with_logger_ms']:.0f} ms ({figures['logger_overhead'] * 100:+.2f} %), daemon: {figures['daemon']}"),
    ]
    if device_memory is not None:
        rows.append(("device memory held by the statistics", f"{device_memory / 2**20:.1f} MiB (the weights: {parameters * 4 / 2**20:.0f} MiB)"))
    print("| what | measured |\n|---|---|")
    for what, value in rows:
        print(f"| {what} | {value} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
