"""A tiny PyTorch classifier with two param groups (body and head at their own rates), logged
into stratad through StrataLogger: every step's loss, and each epoch. Usage:
train_two_groups.py HOST:PORT [EPOCHS]"""

import math
import sys

import torch
from torch import nn

from strata_client import StrataLogger

addr = sys.argv[1]
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 8
torch.manual_seed(0)

# Two Gaussian blobs per class, 3 classes, 2 features.
n, classes = 600, 3
y = torch.randint(0, classes, (n,))
centers = torch.tensor([[0.0, 2.0], [2.0, -1.0], [-2.0, -1.0]])
x = centers[y] + 0.6 * torch.randn(n, 2)
x_train, y_train, x_val, y_val = x[:480], y[:480], x[480:], y[480:]

body = nn.Sequential(nn.Linear(2, 32), nn.ReLU())
head = nn.Linear(32, classes)
model = nn.Sequential(body, head)
optimizer = torch.optim.SGD(
    [
        {"params": body.parameters(), "lr": 0.05, "name": "body"},
        {"params": head.parameters(), "lr": 0.2, "name": "head"},
    ],
    momentum=0.9,
)
loss_fn = nn.CrossEntropyLoss()
batch = 32

with StrataLogger(addr, name="two groups from pytorch", optimizer=optimizer, model=model,
                  task="classification", classes=classes, dataset="3 gaussian blobs",
                  train_rows=len(x_train), val_rows=len(x_val),
                  steps_per_epoch=math.ceil(len(x_train) / batch)) as log:
    step = 0
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x_train))
        total, correct = 0.0, 0
        for i in range(0, len(x_train), batch):
            idx = order[i:i + batch]
            optimizer.zero_grad()
            out = model(x_train[idx])
            loss = loss_fn(out, y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            correct += (out.argmax(1) == y_train[idx]).sum().item()
            step += 1
            log.log(step=step, train_loss=loss.detach())  # queued: never waits on the network
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = loss_fn(out, y_val).item()
            accuracy = (out.argmax(1) == y_val).float().mean().item()
        # Any other keyword is an extra named scalar of the epoch.
        log.log_epoch(train_loss=total / len(x_train), val_loss=val_loss, val_accuracy=accuracy,
                      train_accuracy=correct / len(x_train))
# Leaving the block sent everything (or said what it left in the spool, for `strata sync`).
print(log.run_id)
