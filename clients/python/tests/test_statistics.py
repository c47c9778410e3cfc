"""The group statistics equal what they are defined as, measured without a device copy."""

from __future__ import annotations

import pytest

from strata_client.stats import GroupStatistics

from .conftest import torch_or_skip
from .helpers import tiny


def test_update_ratio_weight_and_grad_norms_are_exact():
    torch = torch_or_skip()
    model, optimizer = tiny()
    stats = GroupStatistics(optimizer, grad_norm_every=2)
    start = [[p.detach().clone() for p in g["params"]] for g in optimizer.param_groups]
    sampled = [[] for _ in optimizer.param_groups]
    x = torch.randn(64, 2)
    y = torch.randint(0, 3, (64,))
    for step in range(5):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        if step % 2 == 0:
            for i, g in enumerate(optimizer.param_groups):
                sampled[i].append(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in g["params"])).item())
        optimizer.step()
    groups = stats.take()
    for i, (group, figures) in enumerate(zip(optimizer.param_groups, groups)):
        moved = torch.sqrt(sum(((p.double() - s.double()) ** 2).sum() for p, s in zip(group["params"], start[i])))
        norm0 = torch.sqrt(sum((s.double() ** 2).sum() for s in start[i]))
        weight = torch.sqrt(sum((p.double() ** 2).sum() for p in group["params"]))
        assert float(figures["update_ratio"]) == pytest.approx((moved / norm0).item(), rel=1e-5)
        assert float(figures["weight_norm"]) == pytest.approx(weight.item(), rel=1e-6)
        assert float(figures["grad_norm"]) == pytest.approx(sum(sampled[i]) / len(sampled[i]), rel=1e-5)
        assert figures["name"] == group["name"] and figures["lr"] == group["lr"]
    # The next epoch starts from here.
    assert float(stats.take()[0]["update_ratio"]) == 0.0
    stats.close()
