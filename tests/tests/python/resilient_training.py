"""A training loop whose daemon is down at start, restarted mid-run and cut off for longer than
its silence timeout, driven by tests/tests/python_client.rs. At the end of some epochs it says
where it is (`CTRL/at-N`) and waits for the test to change the world (`CTRL/go-N`); the logger
must carry it through all of it. Usage: resilient_training.py ADDR CTRL SPOOL_DIR"""

import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

from strata_client import StrataLogger

addr, ctrl, spool = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
EPOCHS, STAGES = 16, (3, 6, 9, 12, 15)
torch.manual_seed(0)
n, classes = 600, 3
y = torch.randint(0, classes, (n,))
centers = torch.tensor([[0.0, 2.0], [2.0, -1.0], [-2.0, -1.0]])
x = centers[y] + 0.8 * torch.randn(n, 2)
x_train, y_train, x_val, y_val = x[:480], y[:480], x[480:], y[480:]
body = nn.Sequential(nn.Linear(2, 32), nn.ReLU())
head = nn.Linear(32, classes)
model = nn.Sequential(body, head)
optimizer = torch.optim.SGD(
    [{"params": body.parameters(), "lr": 0.02, "name": "body"}, {"params": head.parameters(), "lr": 0.05, "name": "head"}],
    momentum=0.9,
)
loss_fn = nn.CrossEntropyLoss()
batch = 32

logger = StrataLogger(addr, name="resilient", optimizer=optimizer, model=model, task="classification",
                      classes=classes, dataset="3 gaussian blobs", train_rows=len(x_train), val_rows=len(x_val),
                      steps_per_epoch=math.ceil(len(x_train) / batch), spool_dir=spool, retry_s=0.2,
                      close_timeout_s=2)
slowest_call = 0.0
step = 0
for epoch in range(1, EPOCHS + 1):
    model.train()
    total = 0.0
    order = torch.randperm(len(x_train))
    for i in range(0, len(x_train), batch):
        idx = order[i:i + batch]
        loss = loss_fn(model(x_train[idx]), y_train[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
        step += 1
        started = time.monotonic()
        logger.log(step=step, train_loss=loss.detach())
        slowest_call = max(slowest_call, time.monotonic() - started)
    model.eval()
    with torch.no_grad():
        out = model(x_val)
        val_loss = loss_fn(out, y_val).item()
        accuracy = (out.argmax(1) == y_val).float().mean().item()
    started = time.monotonic()
    logger.log_epoch(train_loss=total / len(x_train), val_loss=val_loss, val_accuracy=accuracy)
    slowest_call = max(slowest_call, time.monotonic() - started)
    if epoch in STAGES:
        (ctrl / f"at-{epoch}").write_text(str(logger.run_id or ""))
        while not (ctrl / f"go-{epoch}").exists():
            time.sleep(0.02)
report = logger.close()
print(f"slowest logging call: {slowest_call * 1000:.1f} ms", file=sys.stderr)
print(report)
print(f"RUN {report.run_id}")
