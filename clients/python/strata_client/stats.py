"""Per param group statistics of a PyTorch optimizer, measured without a second copy of the
weights on the accelerator and without waiting on it.

What is measured, per param group of the optimizer (the run's groups):

- **gradient norm**: the L2 norm of the group's gradients as the optimizer step sees them (after
  unscaling and clipping), averaged over sampled steps: an optimizer step pre-hook measures the
  first step of each epoch and every `grad_norm_every`-th step after it with one fused
  `torch._foreach_norm` per group, added into a 0-d tensor on the device (no host sync in the
  step);
- **weight norm**: the group's L2 norm at `log_epoch`;
- **update ratio** ‖w_end − w_start‖ / ‖w_start‖ over the epoch. `w_start` is a snapshot of the
  weights in **host memory** (pinned, for a GPU), taken at the previous `log_epoch` with
  non-blocking copies; at the next one the difference is computed on the device chunk by chunk
  (a chunk of the snapshot at a time, at most `CHUNK_ELEMENTS` values, is copied up), so the
  accelerator holds no second copy of the weights — only one chunk at a time.

What it costs: host memory of one copy of the trainable weights (in their own dtype); per epoch,
one device→host copy of the weights (at PCIe speed on a GPU, overlapped with the work after
it), one host→device copy chunk by chunk, and reductions over the weights three times; per
sampled step, one fused norm per group. Every result stays a 0-d tensor on the device until the
logger's background thread reads it, so `log_epoch` queues work and returns. `update_ratios=False`
keeps no snapshot (no host copy; the update ratio is then not measured and sent as 0).
"""

from __future__ import annotations

from typing import Any, List, Optional

#: The most values of one parameter's snapshot copied to the device at once (16 MiB of float32).
CHUNK_ELEMENTS = 4 * 1024 * 1024


def group_name(group: dict, index: int) -> str:
    """A param group's name: its `name` key, else `group0`, `group1`, ..."""
    return str(group.get("name") or f"group{index}")


class GroupStatistics:
    """Measures each param group of `optimizer`; `take()` returns an epoch's figures (0-d tensors
    or floats) and starts the next epoch."""

    def __init__(self, optimizer: Any, grad_norm_every: int = 8, update_ratios: bool = True) -> None:
        import torch

        self._torch = torch
        self.optimizer = optimizer
        self.grad_norm_every = max(1, int(grad_norm_every))
        self.update_ratios = update_ratios
        self._step_in_epoch = 0
        self._grad_sum: List[Any] = [None for _ in optimizer.param_groups]
        self._grad_samples = 0
        self._snapshots: List[List[Any]] = []
        self._start_norms: List[Any] = []
        self._hook = _step_pre_hook(optimizer, self._before_step)
        if update_ratios:
            self._snapshot()

    def close(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self._snapshots = []

    def _params(self, group: dict) -> List[Any]:
        return [p for p in group["params"]]

    def _before_step(self, _optimizer: Any, _args: Any, _kwargs: Any) -> None:
        step = self._step_in_epoch
        self._step_in_epoch += 1
        if step % self.grad_norm_every != 0:
            return
        torch = self._torch
        with torch.no_grad():
            for i, group in enumerate(self.optimizer.param_groups):
                grads = [p.grad for p in group["params"] if p.grad is not None]
                if not grads:
                    continue
                norm = _norm_of(torch, grads)
                self._grad_sum[i] = norm if self._grad_sum[i] is None else self._grad_sum[i] + norm
        self._grad_samples += 1

    def _snapshot(self) -> None:
        """Copies the weights to host memory (reusing the buffers) and notes their norms."""
        torch = self._torch
        fresh = not self._snapshots
        with torch.no_grad():
            if fresh:
                self._snapshots = [
                    [_host_buffer(torch, p) for p in self._params(g)] for g in self.optimizer.param_groups
                ]
            self._start_norms = []
            for group, snaps in zip(self.optimizer.param_groups, self._snapshots):
                params = self._params(group)
                for p, s in zip(params, snaps):
                    s.copy_(p.detach(), non_blocking=True)
                self._start_norms.append(_norm_of(torch, [p.detach() for p in params]) if params else None)

    def _moved(self, params: List[Any], snaps: List[Any]) -> Any:
        """‖w − w_start‖ of a group, the snapshot brought to the device a chunk at a time."""
        torch = self._torch
        total = None
        for p, s in zip(params, snaps):
            flat, host = p.detach().reshape(-1), s.reshape(-1)
            for start in range(0, flat.numel(), CHUNK_ELEMENTS):
                end = min(start + CHUNK_ELEMENTS, flat.numel())
                before = host[start:end].to(flat.device, non_blocking=True)
                part = torch.linalg.vector_norm(flat[start:end].float() - before.float()).double() ** 2
                total = part if total is None else total + part
        return total.sqrt() if total is not None else 0.0

    def take(self) -> List[dict]:
        """The epoch's figures per group (`name`, `lr`, `grad_norm`, `weight_norm`,
        `update_ratio`, `frozen`: numbers or 0-d tensors), then starts the next epoch."""
        torch = self._torch
        groups = []
        with torch.no_grad():
            for i, group in enumerate(self.optimizer.param_groups):
                params = self._params(group)
                weight = _norm_of(torch, [p.detach() for p in params]) if params else 0.0
                if self._grad_sum[i] is not None:
                    grad = self._grad_sum[i] / self._grad_samples
                else:
                    # No step measured (no step pre-hooks before torch 2.0): the gradients now.
                    grads = [p.grad for p in params if p.grad is not None]
                    grad = _norm_of(torch, grads) if grads else 0.0
                ratio: Any = 0.0
                if self.update_ratios and i < len(self._snapshots) and params:
                    start = self._start_norms[i]
                    ratio = _RatioOf(self._moved(params, self._snapshots[i]), start)
                groups.append(
                    {
                        "name": group_name(group, i),
                        "lr": float(group["lr"]),
                        "grad_norm": grad,
                        "weight_norm": weight,
                        "update_ratio": ratio,
                        "frozen": not any(p.requires_grad for p in params),
                    }
                )
            self._grad_sum = [None for _ in self.optimizer.param_groups]
            self._grad_samples = 0
            self._step_in_epoch = 0
            if self.update_ratios:
                # After the differences are queued: the same stream orders the copies after them.
                self._snapshot()
        return groups


class _RatioOf:
    """‖Δw‖ / ‖w_start‖, read when the background thread turns it into a number (0 when the
    weights started at zero)."""

    def __init__(self, moved: Any, start: Optional[Any]) -> None:
        self.moved, self.start = moved, start

    def __float__(self) -> float:
        start = float(self.start) if self.start is not None else 0.0
        return float(self.moved) / start if start > 0 else 0.0


def _norm_of(torch: Any, tensors: List[Any]) -> Any:
    """The L2 norm of several tensors together, as a 0-d float64 tensor on their device."""
    device = tensors[0].device
    foreach = getattr(torch, "_foreach_norm", None)
    if foreach is not None and all(t.device == device for t in tensors):
        norms = foreach(tensors)
    else:  # a group spread over devices: its norms gathered on the first
        norms = [torch.linalg.vector_norm(t).to(device) for t in tensors]
    return torch.stack([n.double() for n in norms]).square().sum().sqrt()


def _host_buffer(torch: Any, p: Any) -> Any:
    """A host tensor shaped like `p` (pinned when `p` is on a GPU, so copies do not block)."""
    pin = p.device.type == "cuda"
    return torch.empty(p.shape, dtype=p.dtype, device="cpu", pin_memory=pin)


def _step_pre_hook(optimizer: Any, hook: Any) -> Any:
    """Registers `hook` before each step of the optimizer a wrapper (Accelerate's, Lightning's)
    holds; None when there is no such hook (torch < 2.0): gradients are then read at `take()`."""
    inner = optimizer
    for _ in range(4):
        if hasattr(inner, "_optimizer_step_pre_hooks") or not hasattr(inner, "optimizer"):
            break
        inner = inner.optimizer
    register = getattr(inner, "register_step_pre_hook", None)
    if register is None:
        return None
    try:
        return register(hook)
    except (AttributeError, RuntimeError):
        return None
