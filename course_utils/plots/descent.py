"""Full-batch gradient descent on y ≈ w·x + b, with the path recorded. Used in 02_autograd.

The trainer behind `ch02.draw_gd_explorer` (the gradient-descent explorer). It draws nothing.
"""

from __future__ import annotations

import torch

__all__ = ["GD_OPTIMIZERS", "gd_run"]

GD_OPTIMIZERS = ("SGD", "SGD+momentum", "Adam")


def _gd_critical_lr(x: torch.Tensor) -> float:
    """2 / lambda_max of the MSE Hessian of w*x + b (plain gradient descent diverges above it)."""
    x = x.double()
    n = x.numel()
    hessian = (2.0 / n) * torch.stack([torch.stack([(x * x).sum(), x.sum()]),
                                       torch.stack([x.sum(), torch.tensor(float(n), dtype=torch.float64)])])
    return 2.0 / torch.linalg.eigvalsh(hessian).max().item()


def gd_run(x, y, lr: float, optimizer: str = "SGD", epochs: int = 100, init=(1.0, 0.0)) -> dict:
    """Fit y ≈ w·x + b by full-batch gradient descent and record the path. Used in 02_autograd.

    `optimizer` is "SGD", "SGD+momentum" (momentum 0.9) or "Adam", each from `torch.optim` with
    learning rate `lr`, starting at `init` = (w, b). Everything runs in float32 on the CPU, as in
    the chapter. Returns a dict:

    - `path`: a (k, 2) tensor of (w, b), the start followed by the point after each step;
    - `losses`: a (k,) tensor, the MSE at each point of `path`;
    - `status`: "diverged" (a loss became inf/nan or ended above where it started), "converged"
      (the loss changed by less than 1e-4, relatively, over the last tenth of the epochs) or
      "still improving";
    - `critical_lr`: 2/λ_max of the loss's Hessian, the largest lr plain gradient descent survives.

    The run stops at the first non-finite loss, so `path` and `losses` hold finite values only
    and can go straight onto a log axis.
    """
    if optimizer not in GD_OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(GD_OPTIMIZERS)}, got {optimizer!r}")
    x = torch.as_tensor(x, dtype=torch.float32).detach().cpu()
    y = torch.as_tensor(y, dtype=torch.float32).detach().cpu()
    params = torch.tensor([float(v) for v in init], dtype=torch.float32)
    if optimizer == "SGD":
        opt = torch.optim.SGD([params], lr=lr)
    elif optimizer == "SGD+momentum":
        opt = torch.optim.SGD([params], lr=lr, momentum=0.9)
    else:
        opt = torch.optim.Adam([params], lr=lr)

    # The gradient is the chapter's hand-derived one (grad_fn), set on params.grad for the
    # optimizer to use: the same numbers as loss.backward(), at half the cost per step.
    n = x.numel()
    path, losses, blew_up = [], [], False
    for step in range(int(epochs) + 1):
        residual = params[0] * x + params[1] - y
        loss = (residual ** 2).mean()
        if not (torch.isfinite(loss) and torch.isfinite(params).all()):
            blew_up = True
            break
        path.append(params.clone())
        losses.append(loss.item())
        if step == int(epochs):
            break  # the last entry is the loss after the final step
        dloss_dpred = 2 * residual / n
        params.grad = torch.stack([(dloss_dpred * x).sum(), dloss_dpred.sum()])
        opt.step()

    losses_t = torch.tensor(losses, dtype=torch.float64)
    tail = max(1, len(losses) // 10)
    if blew_up or losses[-1] > losses[0]:
        status = "diverged"
    elif len(losses) > tail and abs(losses[-1 - tail] - losses[-1]) <= 1e-4 * max(abs(losses[-1]), 1e-12):
        status = "converged"
    else:
        status = "still improving"
    return {
        "path": torch.stack(path),
        "losses": losses_t,
        "status": status,
        "critical_lr": _gd_critical_lr(x),
    }
