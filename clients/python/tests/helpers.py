"""A tiny PyTorch loop the tests log: two param groups, a few steps an epoch."""

from __future__ import annotations

from typing import Any, Tuple


def tiny(seed: int = 0) -> Tuple[Any, Any]:
    """A two-group model and its optimizer (body at 0.05, head at 0.2)."""
    import torch

    torch.manual_seed(seed)
    body = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU())
    head = torch.nn.Linear(16, 3)
    model = torch.nn.Sequential(body, head)
    optimizer = torch.optim.SGD(
        [
            {"params": body.parameters(), "lr": 0.05, "name": "body"},
            {"params": head.parameters(), "lr": 0.2, "name": "head"},
        ],
        momentum=0.9,
    )
    return model, optimizer


def train_epoch(model: Any, optimizer: Any, logger: Any = None, first_step: int = 0, steps: int = 4) -> dict:
    """Trains a few steps (logging each), returns the epoch's figures for `log_epoch`."""
    import torch

    x = torch.randn(32 * steps, 2)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    total = 0.0
    for i in range(steps):
        out = model(x[i * 32:(i + 1) * 32])
        loss = torch.nn.functional.cross_entropy(out, y[i * 32:(i + 1) * 32])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
        if logger is not None:
            logger.log(step=first_step + i + 1, train_loss=loss.detach())
    with torch.no_grad():
        out = model(x)
        val_loss = torch.nn.functional.cross_entropy(out, y).item()
        accuracy = (out.argmax(1) == y).float().mean().item()
    return {"train_loss": total / steps, "val_loss": val_loss, "val_accuracy": accuracy}
