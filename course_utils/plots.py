"""Figures and widget explorers that chapters share.

Each function draws with matplotlib (and, for explorers, ipywidgets) and says in its docstring which
chapter teaches it. Nothing here runs at import time; ipywidgets is imported only by the explorers.
"""

from __future__ import annotations


# ----------------------------------------------------------------------------------------------
# 01_tensors: memory diagrams, the stride explorer, broadcasting pictures and CT views
# ----------------------------------------------------------------------------------------------

import ast as _ast

import numpy as _np
import torch as _torch


def _plt():
    import matplotlib.pyplot as plt

    return plt


def explorer(draw, layout=None, note: str = "Move a control to draw with those settings.", **controls):
    """An ipywidgets explorer that calls `draw(**values)` whenever a control changes. Taught in 01_tensors.

    Unlike `widgets.interact`, nothing is computed while the cell runs: drawing a figure into an
    Output widget during a scripted run (nbclient, nbval) can leave it waiting forever for a reply
    the kernel has already sent (nbclient issue #312). So each chapter draws the default picture
    with a plain call of its draw function in the cell before, and the explorer takes over from
    there. `layout` (optional) arranges the controls, e.g. a VBox of HBoxes; the default stacks them.
    Returns the box (a notebook displays it); `box.redraw()` draws with the current values.
    """
    import ipywidgets as widgets

    out = widgets.Output()
    out.append_stdout(note + "\n")

    def redraw(*_):
        with out:
            out.clear_output(wait=True)
            draw(**{name: control.value for name, control in controls.items()})

    for control in controls.values():
        control.observe(redraw, names="value")
    box = widgets.VBox([layout if layout is not None else widgets.VBox(list(controls.values())), out])
    box.redraw = redraw
    return box


def storage_elements(t: _torch.Tensor) -> _torch.Tensor:
    """The whole storage behind `t` as a flat 1-D view (no copy). Taught in 01_tensors.

    A tensor is a window (size, storage offset, stride) onto one flat buffer; this returns that
    buffer, element by element, with `as_strided((n,), (1,), 0)`.
    """
    n = t.untyped_storage().nbytes() // t.element_size()
    return _torch.as_strided(t.detach(), (n,), (1,), 0)


def element_addresses(t: _torch.Tensor) -> _torch.Tensor:
    """For every element of `t`, its position in the storage: offset + sum(stride[i] * index[i]).

    Returns an int64 tensor of t's shape. Taught in 01_tensors.
    """
    n = t.untyped_storage().nbytes() // t.element_size()
    positions = _torch.arange(max(n, 1))
    return _torch.as_strided(positions, tuple(t.shape), tuple(t.stride()), t.storage_offset())


def _as_grid(x: _torch.Tensor) -> _torch.Tensor:
    """Show any tensor as rows x columns: scalars as 1x1, 1-D as one row, leading dims merged."""
    if x.ndim == 0:
        return x.reshape(1, 1)
    if x.ndim == 1:
        return x.reshape(1, -1)
    return x.reshape(-1, x.shape[-1])


def _fmt(v: float) -> str:
    return f"{int(v)}" if float(v).is_integer() else f"{v:.3g}"


def describe_view(t: _torch.Tensor, base: _torch.Tensor | None = None) -> str:
    """One line: size, storage offset, stride, contiguity and, given `base`, shared memory. Taught in 01_tensors."""
    line = (
        f"size {tuple(t.shape)}  offset {t.storage_offset()}  stride {tuple(t.stride())}  "
        f"contiguous {t.is_contiguous()}"
    )
    if base is not None:
        shared = t.untyped_storage().data_ptr() == base.untyped_storage().data_ptr()
        line += f"  shares memory with base {shared}"
    return line


def draw_storage(t: _torch.Tensor, title: str | None = None, base: _torch.Tensor | None = None, max_elements: int = 96):
    """Draw a view over its flat storage: the view's grid on top, the storage below. Taught in 01_tensors.

    Each element of the view is coloured by its storage address, and the storage cells it uses carry
    the same colour, so you can see which numbers a slice, transpose or expand really touches.
    Storage cells the view does not use stay grey. Returns the figure.
    """
    plt = _plt()
    from matplotlib.patches import Rectangle

    t = t.detach().cpu() if t.device.type != "cpu" else t.detach()
    storage = storage_elements(t).to(_torch.float64)
    n = storage.numel()
    if n > max_elements:
        raise ValueError(f"draw_storage shows at most {max_elements} storage elements, this one has {n}.")
    addresses = _as_grid(element_addresses(t)) if t.numel() else _torch.zeros(0, 0, dtype=_torch.long)
    values = _as_grid(t.to(_torch.float64)) if t.numel() else _torch.zeros(0, 0)
    cmap = plt.get_cmap("viridis")

    def colour(addr: int):
        return cmap(0.15 + 0.8 * addr / max(n - 1, 1))

    per_row = 16 if n > 16 else max(n, 1)
    storage_rows = (n + per_row - 1) // per_row
    grid_rows, grid_cols = (addresses.shape if addresses.numel() else (0, 0))
    cell = 0.75 if max(per_row, grid_cols) <= 8 else 0.6
    width = max(max(per_row, grid_cols) * cell + 1.0, 5.5)
    height = 1.3 + cell * max(grid_rows, 1) + cell * 1.3 * max(storage_rows, 1)
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(width, height),
        gridspec_kw={"height_ratios": [max(grid_rows, 1), max(storage_rows, 1) * 1.1]},
    )
    for ax in (top, bottom):
        ax.set_axis_off()
        ax.set_aspect("equal")
    used = set(addresses.flatten().tolist())
    for r in range(grid_rows):
        for c in range(grid_cols):
            a = int(addresses[r, c])
            top.add_patch(Rectangle((c, -r), 1, 1, facecolor=colour(a), edgecolor="white"))
            top.text(c + 0.5, -r + 0.5, _fmt(float(values[r, c])), ha="center", va="center", color="white", fontsize=9)
    top.set_xlim(-0.1, max(grid_cols, 1) + 0.1)
    top.set_ylim(-max(grid_rows, 1) + 0.9, 1.1)
    top.set_title("the view" if t.numel() else "the view (empty)", fontsize=9, loc="left")
    for k in range(n):
        r, c = divmod(k, per_row)
        face = colour(k) if k in used else "#dddddd"
        bottom.add_patch(Rectangle((c, -r * 1.4), 1, 1, facecolor=face, edgecolor="white"))
        bottom.text(c + 0.5, -r * 1.4 + 0.5, _fmt(float(storage[k])), ha="center", va="center",
                    color="white" if k in used else "#555555", fontsize=9)
        bottom.text(c + 0.5, -r * 1.4 - 0.2, str(k), ha="center", va="center", fontsize=7, color="#555555")
    bottom.set_xlim(-0.1, per_row + 0.1)
    bottom.set_ylim(-(storage_rows - 1) * 1.4 - 0.5, 1.1)
    bottom.set_title("its storage (address below each cell)", fontsize=9, loc="left")
    fig.suptitle(title or describe_view(t, base), fontsize=9)
    fig.tight_layout()
    return fig


_ALLOWED_METHODS = {
    "t", "transpose", "permute", "expand", "expand_as", "contiguous", "view", "reshape", "unsqueeze",
    "squeeze", "flatten", "clone", "narrow", "select", "flip", "T", "mT",
}


def _check_chain(node: _ast.AST) -> None:
    """Refuse anything in an op chain but indexing and the methods in _ALLOWED_METHODS."""
    if isinstance(node, _ast.Name):
        if node.id != "t":
            raise ValueError(f"only `t` may be named, not {node.id!r}")
        return
    if isinstance(node, _ast.Attribute):
        if node.attr not in _ALLOWED_METHODS:
            raise ValueError(f"`.{node.attr}` is not one of: {', '.join(sorted(_ALLOWED_METHODS))}")
        return _check_chain(node.value)
    if isinstance(node, _ast.Call):
        if not isinstance(node.func, _ast.Attribute) or node.keywords:
            raise ValueError("write calls as t.method(numbers), without keywords")
        for arg in node.args:
            _check_literal(arg)
        return _check_chain(node.func)
    if isinstance(node, _ast.Subscript):
        _check_literal(node.slice)
        return _check_chain(node.value)
    raise ValueError(f"{type(node).__name__} is not allowed in an op chain")


def _check_literal(node: _ast.AST) -> None:
    if isinstance(node, _ast.Constant) and (node.value is None or node.value is Ellipsis or isinstance(node.value, int)):
        return
    if isinstance(node, _ast.UnaryOp) and isinstance(node.op, _ast.USub):
        return _check_literal(node.operand)
    if isinstance(node, _ast.Slice):
        for part in (node.lower, node.upper, node.step):
            if part is not None:
                _check_literal(part)
        return
    if isinstance(node, _ast.Tuple):
        for elt in node.elts:
            _check_literal(elt)
        return
    raise ValueError("indices and arguments must be integers, slices, None or ...")


def apply_ops(t: _torch.Tensor, chain: str) -> _torch.Tensor:
    """Apply a chain of view operations written as text, e.g. "[:, 1:].t()". Taught in 01_tensors.

    The chain may index (integers, slices, None, ...) and call shape methods such as transpose,
    permute, expand, contiguous, view, reshape and unsqueeze; nothing else is evaluated.
    An empty chain returns `t` itself.
    """
    chain = (chain or "").strip()
    if not chain:
        return t
    try:
        tree = _ast.parse("t" + chain, mode="eval")
    except SyntaxError as err:
        raise ValueError(f"cannot read the op chain {chain!r}: {err.msg}") from None
    _check_chain(tree.body)
    return eval(compile(tree, "<op chain>", "eval"), {"__builtins__": {}}, {"t": t})  # noqa: S307


def show_view(shape=(3, 4), chain: str = "[:, 1:].t()"):
    """Draw what a chain of ops does to `torch.arange(n).reshape(shape)`. Taught in 01_tensors.

    The stride explorer's draw function: the base holds 0, 1, 2, ... so every value is also its
    address in the base's storage. Returns (the view, the figure).
    """
    shape = tuple(int(s) for s in shape)
    base = _torch.arange(int(_np.prod(shape)) if shape else 1).reshape(shape)
    view = apply_ops(base, chain)
    fig = draw_storage(view, title=f"base{list(shape)}{chain}:  " + describe_view(view, base))
    return view, fig


def stride_explorer(shapes=((3, 4), (2, 3, 4), (4, 4), (12,))):
    """Widget: pick a base shape and type a chain of ops; see size, offset, stride and storage.

    Taught in 01_tensors. Returns the ipywidgets box (a notebook displays it).
    """
    import ipywidgets as widgets
    from IPython.display import display

    plt = _plt()
    examples = [
        "[:, 1:].t()", "[1]", "[:, ::2]", ".t()", ".t().contiguous()", "[None, :, 1]",
        ".unsqueeze(0).expand(2, -1, -1)", "[1:, 1:]", ".view(-1)", ".t().reshape(-1)",
        ".permute(2, 0, 1)", "[..., 1:3]",
    ]
    shape_box = widgets.Dropdown(options=[(str(s), s) for s in shapes], value=tuple(shapes[0]), description="base shape")
    example_box = widgets.Dropdown(options=["(type your own)"] + examples, value="(type your own)", description="examples")
    chain_box = widgets.Text(value="[:, 1:].t()", description="ops: t", continuous_update=False,
                             layout=widgets.Layout(width="420px"))
    out = widgets.Output()

    def redraw(*_):
        with out:
            out.clear_output(wait=True)
            try:
                _, fig = show_view(shape_box.value, chain_box.value)
                plt.show()
            except Exception as err:  # a chain that does not fit the shape: say why, keep going
                print(f"{type(err).__name__}: {err}")

    def pick_example(change):
        if change["new"] != "(type your own)":
            chain_box.value = change["new"]

    example_box.observe(pick_example, names="value")
    shape_box.observe(redraw, names="value")
    chain_box.observe(redraw, names="value")
    out.append_stdout("Pick a shape or type an indexing chain to draw it (nothing is drawn until then).\n")
    box = widgets.VBox([widgets.HBox([shape_box, example_box]), chain_box, out])
    box.redraw = redraw
    return box


def draw_broadcast_shapes(a_shape, b_shape, names=("a", "b")):
    """Right-align two shapes, mark the dimensions that stretch, and show the result. Taught in 01_tensors.

    Size-1 or missing dimensions are drawn in orange (they stretch); a clash is drawn in red and the
    result row says "incompatible". Returns the figure.
    """
    plt = _plt()
    from matplotlib.patches import Rectangle

    a_shape, b_shape = tuple(a_shape), tuple(b_shape)
    rank = max(len(a_shape), len(b_shape), 1)
    pa = (None,) * (rank - len(a_shape)) + a_shape
    pb = (None,) * (rank - len(b_shape)) + b_shape
    result, ok = [], True
    for x, y in zip(pa, pb):
        x1, y1 = 1 if x is None else x, 1 if y is None else y
        if x1 == y1 or x1 == 1 or y1 == 1:
            result.append(y1 if x1 == 1 else x1)
        else:
            result.append(None)
            ok = False
    fig, ax = plt.subplots(figsize=(max(6.0, 2.0 + 1.1 * rank), 2.3))
    ax.set_axis_off()
    rows = [(names[0], pa, None), (names[1], pb, None), ("result", tuple(result), ok)]
    for r, (label, dims, _) in enumerate(rows):
        y = -r * 1.2
        ax.text(-0.2, y + 0.45, label, ha="right", va="center", fontsize=10)
        for c, d in enumerate(dims):
            other = rows[1 - r][1][c] if r < 2 else None
            if r < 2:
                o1 = 1 if other is None else other
                d1 = 1 if d is None else d
                if d1 != o1 and d1 != 1 and o1 != 1:
                    face = "#e45756"
                elif d1 == 1 and o1 != 1:
                    face = "#f58518"
                else:
                    face = "#4c78a8"
            else:
                face = "#54a24b" if d is not None else "#e45756"
            text = "·" if (d is None and r < 2) else ("✗" if d is None else str(d))
            ax.add_patch(Rectangle((c * 0.9, y), 0.8, 0.9, facecolor=face, edgecolor="white", alpha=0.9 if d is not None else 0.35))
            ax.text(c * 0.9 + 0.4, y + 0.45, text, ha="center", va="center", color="white", fontsize=11)
    ax.set_xlim(-1.4, rank * 0.9 + 0.1)
    ax.set_ylim(-2 * 1.2 - 0.1, 1.0)
    verdict = f"result {tuple(result)}" if ok else "incompatible"
    ax.set_title(f"{a_shape} with {b_shape}: {verdict}\n(orange: size 1 or missing, stretches; red: clash)", fontsize=9)
    fig.tight_layout()
    return fig


def draw_expand(t: _torch.Tensor, shape, title: str | None = None):
    """Draw `t.expand(shape)` with every cell labelled by the storage address it reads. Taught in 01_tensors.

    Cells that show the same address are one number in memory: the stride-0 dimensions repeat it
    without copying. The last two dimensions form each panel; a leading dimension gives panels.
    Returns the figure.
    """
    plt = _plt()
    from matplotlib.patches import Rectangle

    big = t.expand(*shape)
    addr = element_addresses(big)
    if big.ndim == 1:
        addr = addr.reshape(1, 1, -1)
    elif big.ndim == 2:
        addr = addr.unsqueeze(0)
    elif big.ndim > 3:
        addr = addr.reshape(-1, *addr.shape[-2:])
    panels, rows, cols = addr.shape
    n = max(int(addr.max()) + 1, 1) if addr.numel() else 1
    cmap = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, panels, figsize=(0.45 * cols * panels + 0.6 * panels + 0.5, 0.45 * rows + 1.0), squeeze=False)
    for p, ax in enumerate(axes[0]):
        ax.set_axis_off()
        ax.set_aspect("equal")
        for r in range(rows):
            for c in range(cols):
                a = int(addr[p, r, c])
                ax.add_patch(Rectangle((c, -r), 1, 1, facecolor=cmap(a % 10), edgecolor="white"))
                ax.text(c + 0.5, -r + 0.5, str(a), ha="center", va="center", color="white", fontsize=8)
        ax.set_xlim(0, cols)
        ax.set_ylim(-rows + 1, 1)
        if panels > 1:
            ax.set_title(f"[{p}]", fontsize=8)
    fig.suptitle(
        title or f"{tuple(t.shape)} expanded to {tuple(big.shape)}: stride {tuple(big.stride())}, "
        f"{big.numel()} cells read {n} stored numbers",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def draw_boxed_vs_unboxed(values=(4.0, 1.0, 5.0, 3.0, 2.0, 1.0)):
    """Python list of boxed floats versus a tensor's one block of raw numbers. Taught in 01_tensors.

    Left: the list stores pointers; each points to a separate float object (type, refcount, value)
    somewhere on the heap. Right: the tensor stores the numbers themselves, 4 bytes each, side by side.
    Returns the figure.
    """
    plt = _plt()
    from matplotlib.patches import FancyArrowPatch, Rectangle

    values = list(values)
    n = len(values)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax in (left, right):
        ax.set_axis_off()
    # the list: a row of pointers, arrows to objects scattered below
    rng = _np.random.default_rng(0)
    xs = rng.permutation(n) * 1.25
    for i, v in enumerate(values):
        left.add_patch(Rectangle((i, 3), 1, 0.8, facecolor="#cfd8e3", edgecolor="#4c78a8"))
        left.text(i + 0.5, 3.4, "ptr", ha="center", va="center", fontsize=8)
        x, y = xs[i], 0.2 + (i % 2) * 1.1
        left.add_patch(Rectangle((x, y), 1.1, 0.9, facecolor="#fde3c8", edgecolor="#f58518"))
        left.text(x + 0.55, y + 0.62, "float obj", ha="center", va="center", fontsize=6)
        left.text(x + 0.55, y + 0.28, _fmt(v), ha="center", va="center", fontsize=9)
        left.add_patch(FancyArrowPatch((i + 0.5, 3), (x + 0.55, y + 0.9), arrowstyle="->", mutation_scale=8, color="#777777"))
    left.set_xlim(-0.2, max(n, xs.max() + 1.2) + 0.2)
    left.set_ylim(0, 4)
    left.set_title("Python list: pointers to boxed objects", fontsize=10)
    for i, v in enumerate(values):
        right.add_patch(Rectangle((i, 1.6), 1, 0.8, facecolor="#4c78a8", edgecolor="white"))
        right.text(i + 0.5, 2.0, _fmt(v), ha="center", va="center", color="white", fontsize=10)
        right.text(i + 0.5, 1.35, f"+{4 * i}", ha="center", va="center", fontsize=7, color="#555555")
    right.text(n / 2, 0.8, f"one block: {n} float32 = {4 * n} bytes", ha="center", fontsize=9)
    right.set_xlim(-0.2, n + 0.2)
    right.set_ylim(0, 4)
    right.set_title("tensor: one contiguous block of numbers", fontsize=10)
    fig.tight_layout()
    return fig


def draw_ct_slice(volume, spacing=(1.0, 1.0, 1.0), axis: int = 0, index: int | None = None,
                  level: float = 40.0, width: float = 400.0, ax=None, title: str | None = None):
    """One slice of a (D, H, W) volume under a display window, at its true aspect. Taught in 01_tensors.

    axis 0 is axial, 1 coronal, 2 sagittal; `spacing` is (z, y, x) in mm. The window maps
    level - width/2 ... level + width/2 HU onto black ... white. Returns the axes.
    """
    plt = _plt()
    vol = volume.detach().cpu().numpy() if isinstance(volume, _torch.Tensor) else _np.asarray(volume)
    axis = int(axis)
    index = vol.shape[axis] // 2 if index is None else int(index)
    image = _np.take(vol, index, axis=axis)
    dz, dy, dx = (float(s) for s in spacing)
    row_mm, col_mm = {0: (dy, dx), 1: (dz, dx), 2: (dz, dy)}[axis]
    image = image[::-1]  # rows flipped: the face up in the axial view, the head up in the others
    if ax is None:
        _, ax = plt.subplots(figsize=(3.6, 3.6))
    ax.imshow(image, cmap="gray", vmin=level - width / 2, vmax=level + width / 2, aspect=row_mm / col_mm,
              interpolation="nearest")
    ax.set_axis_off()
    name = ("axial", "coronal", "sagittal")[axis]
    ax.set_title(title or f"{name} {index}, window {level:g}/{width:g}", fontsize=9)
    return ax


def show_ct_planes(volume, spacing=(1.0, 1.0, 1.0), level: float = 40.0, width: float = 400.0):
    """Axial, coronal and sagittal middle slices side by side at the correct aspect. Taught in 01_tensors.

    Returns the figure.
    """
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    for axis, ax in enumerate(axes):
        draw_ct_slice(volume, spacing, axis=axis, level=level, width=width, ax=ax)
    fig.tight_layout()
    return fig


def ct_slicer(volume, spacing=(1.0, 1.0, 1.0)):
    """Widget: sliders for axis, slice index, window level and window width. Taught in 01_tensors.

    Returns the ipywidgets object (a notebook displays it).
    """
    import ipywidgets as widgets

    plt = _plt()
    shape = tuple(volume.shape)

    def draw(axis=0, position=0.5, level=40, width=400):
        index = min(int(position * shape[axis]), shape[axis] - 1)
        draw_ct_slice(volume, spacing, axis=axis, index=index, level=level, width=width)
        plt.show()

    return explorer(
        draw,
        axis=widgets.Dropdown(options=[("axial", 0), ("coronal", 1), ("sagittal", 2)], value=0, description="axis"),
        position=widgets.FloatSlider(min=0.0, max=1.0, step=0.01, value=0.5, continuous_update=False, description="position"),
        level=widgets.IntSlider(min=-1000, max=1500, step=10, value=40, continuous_update=False, description="level"),
        width=widgets.IntSlider(min=10, max=4000, step=10, value=400, continuous_update=False, description="width"),
    )


# ----------------------------------------------------------------------------------------------
# 02_autograd: the gradient-descent explorer
# ----------------------------------------------------------------------------------------------

GD_OPTIMIZERS = ("SGD", "SGD+momentum", "Adam")


def _gd_critical_lr(x: _torch.Tensor) -> float:
    """2 / lambda_max of the MSE Hessian of w*x + b (plain gradient descent diverges above it)."""
    x = x.double()
    n = x.numel()
    hessian = (2.0 / n) * _torch.stack([_torch.stack([(x * x).sum(), x.sum()]),
                                        _torch.stack([x.sum(), _torch.tensor(float(n), dtype=_torch.float64)])])
    return 2.0 / _torch.linalg.eigvalsh(hessian).max().item()


def gd_run(x, y, lr: float, optimizer: str = "SGD", epochs: int = 100, init=(1.0, 0.0)) -> dict:
    """Fit y ≈ w·x + b by full-batch gradient descent and record the path. Taught in 02_autograd.

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
    x = _torch.as_tensor(x, dtype=_torch.float32).detach().cpu()
    y = _torch.as_tensor(y, dtype=_torch.float32).detach().cpu()
    params = _torch.tensor([float(v) for v in init], dtype=_torch.float32)
    if optimizer == "SGD":
        opt = _torch.optim.SGD([params], lr=lr)
    elif optimizer == "SGD+momentum":
        opt = _torch.optim.SGD([params], lr=lr, momentum=0.9)
    else:
        opt = _torch.optim.Adam([params], lr=lr)

    # The gradient is the chapter's hand-derived one (grad_fn), set on params.grad for the
    # optimizer to use: the same numbers as loss.backward(), at half the cost per step.
    n = x.numel()
    path, losses, blew_up = [], [], False
    for step in range(int(epochs) + 1):
        residual = params[0] * x + params[1] - y
        loss = (residual ** 2).mean()
        if not (_torch.isfinite(loss) and _torch.isfinite(params).all()):
            blew_up = True
            break
        path.append(params.clone())
        losses.append(loss.item())
        if step == int(epochs):
            break  # the last entry is the loss after the final step
        dloss_dpred = 2 * residual / n
        params.grad = _torch.stack([(dloss_dpred * x).sum(), dloss_dpred.sum()])
        opt.step()

    losses_t = _torch.tensor(losses, dtype=_torch.float64)
    tail = max(1, len(losses) // 10)
    if blew_up or losses[-1] > losses[0]:
        status = "diverged"
    elif len(losses) > tail and abs(losses[-1 - tail] - losses[-1]) <= 1e-4 * max(abs(losses[-1]), 1e-12):
        status = "converged"
    else:
        status = "still improving"
    return {
        "path": _torch.stack(path),
        "losses": losses_t,
        "status": status,
        "critical_lr": _gd_critical_lr(x),
    }


def _gd_box(path: _torch.Tensor, optimum: _torch.Tensor) -> tuple[tuple[float, float], tuple[float, float]]:
    """A square window (same span for w and b) around the start, the optimum and the path.

    The path is followed at most 1.5 spans beyond the start and the optimum, so a run that blows
    up does not shrink the picture to a dot.
    """
    start = path[0].double()
    corners = _torch.stack([start, optimum])
    span = (corners.max(0).values - corners.min(0).values).max().clamp_min(1e-3)
    lo = corners.min(0).values - 0.25 * span
    hi = corners.max(0).values + 0.25 * span
    pts = path.double()
    lo = _torch.maximum(_torch.minimum(lo, pts.min(0).values), corners.min(0).values - 1.5 * span)
    hi = _torch.minimum(_torch.maximum(hi, pts.max(0).values), corners.max(0).values + 1.5 * span)
    centre, half = (lo + hi) / 2, (hi - lo).max() / 2 * 1.05
    return (centre[0].item() - half.item(), centre[0].item() + half.item()), \
           (centre[1].item() - half.item(), centre[1].item() + half.item())


def draw_gd_explorer(x, y, lr: float = 1e-2, scale: float = 0.1, optimizer: str = "SGD", epochs: int = 5000,
                     init=(1.0, 0.0)) -> dict:
    """Run gradient descent on y ≈ w·(scale·x) + b and draw what happened. Taught in 02_autograd.

    Left: the loss per epoch (log scale, cut at the first inf/nan). Right: the loss contours over
    (w, b), drawn at the same scale on both axes (the geometry gradient descent sees), with the path
    the optimizer took, the start (o) and the least-squares optimum (*).
    Prints one line with the verdict ("diverged", "converged" or "still improving") and the
    critical learning rate 2/λ_max of plain gradient descent on this input. Returns `gd_run`'s dict.
    This is the draw function of `gd_explorer`.
    """
    plt = _plt()
    xs = _torch.as_tensor(x, dtype=_torch.float32).detach().cpu() * float(scale)
    ys = _torch.as_tensor(y, dtype=_torch.float32).detach().cpu()
    run = gd_run(xs, ys, lr, optimizer=optimizer, epochs=epochs, init=init)

    design = _torch.stack([xs.double(), _torch.ones_like(xs, dtype=_torch.float64)], dim=1)
    optimum = _torch.linalg.lstsq(design, ys.double().unsqueeze(1)).solution.squeeze(1)
    (w_lo, w_hi), (b_lo, b_hi) = _gd_box(run["path"], optimum)
    ws = _torch.linspace(w_lo, w_hi, 161, dtype=_torch.float64)
    bs = _torch.linspace(b_lo, b_hi, 161, dtype=_torch.float64)
    grid_w, grid_b = _torch.meshgrid(ws, bs, indexing="xy")
    surface = ((grid_w[..., None] * xs.double() + grid_b[..., None] - ys.double()) ** 2).mean(-1)
    best = ((design @ optimum - ys.double()) ** 2).mean().item()
    levels = _np.geomspace(max(best * 1.02, 1e-6), surface.max().item(), 14)

    fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(10.0, 4.2))
    losses = run["losses"]
    ax_loss.semilogy(range(len(losses)), losses.numpy(), color="C0")
    ax_loss.axhline(best, color="gray", ls=":", label="best possible")
    ax_loss.set(xlabel="epoch", ylabel="MSE loss", title=f"{optimizer}, lr={lr:.2g}, input × {scale:g}")
    ax_loss.legend(loc="upper right")

    ax_map.contour(ws.numpy(), bs.numpy(), surface.numpy(), levels=levels, cmap="viridis", linewidths=0.8)
    path = run["path"].numpy()
    ax_map.plot(path[:, 0], path[:, 1], ".-", color="C3", ms=2, lw=0.8)
    ax_map.plot(path[0, 0], path[0, 1], "o", color="C3", mfc="none", ms=8)
    ax_map.plot(optimum[0].item(), optimum[1].item(), "*", color="k", ms=10)
    ax_map.set(xlim=(w_lo, w_hi), ylim=(b_lo, b_hi), aspect="equal", xlabel="w", ylabel="b",
               title="path over the loss contours")
    fig.tight_layout()
    plt.show()

    crit = run["critical_lr"]
    if optimizer == "SGD":
        note = f"plain GD diverges above lr = {crit:.3g} on this input"
    elif optimizer == "SGD+momentum":
        note = f"with momentum 0.9 the limit is 1.9 × 2/λ_max = {1.9 * crit:.3g} (plain GD: {crit:.3g})"
    else:
        note = f"Adam scales each step to about lr per parameter (plain GD would diverge above {crit:.3g})"
    steps = len(losses) - 1
    if steps < int(epochs):
        verdict = f"diverged: the loss overflowed after {steps} of {int(epochs)} epochs"
    else:
        verdict = f"{run['status']} after {int(epochs)} epochs, final loss {losses[-1].item():.4g}"
    print(f"{verdict}; {note}")
    return run


def gd_explorer(x, y):
    """Widget: learning rate, input scale, optimizer and epochs for fitting y ≈ w·x + b. Taught in 02_autograd.

    Each change of a control (or a press of "draw") reruns `draw_gd_explorer`: the loss curve, the
    path over the loss contours, and a diverged/converged verdict with the critical learning rate.
    Nothing is computed while the widget is built, only when a control is used: a notebook shows the
    default picture with a plain `draw_gd_explorer(...)` call. (Drawing a figure into an Output
    widget while a cell executes can leave a scripted run, nbclient or nbval, waiting forever for a
    reply that the kernel has sent.) Returns the ipywidgets box (a notebook displays it).
    """
    import ipywidgets as widgets

    lr = widgets.FloatLogSlider(value=1e-2, base=10, min=-6, max=0, step=0.1, readout_format=".1e",
                                continuous_update=False, description="lr")
    scale = widgets.ToggleButtons(options=[("× 1 (raw)", 1.0), ("× 0.1 (scaled)", 0.1)], value=0.1,
                                  description="input")
    optimizer = widgets.ToggleButtons(options=list(GD_OPTIMIZERS), value="SGD", description="optimizer")
    epochs = widgets.IntSlider(value=5000, min=10, max=5000, step=10, continuous_update=False,
                               description="epochs")
    button = widgets.Button(description="draw")
    out = widgets.Output()
    out.append_stdout("Press draw, or move a control, to run gradient descent with these settings.\n")

    def redraw(*_):
        with out:
            out.clear_output(wait=True)
            draw_gd_explorer(x, y, lr=lr.value, scale=scale.value, optimizer=optimizer.value, epochs=epochs.value)

    for control in (lr, scale, optimizer, epochs):
        control.observe(redraw, names="value")
    button.on_click(redraw)
    box = widgets.VBox([widgets.HBox([lr, epochs]), scale, optimizer, button, out])
    box.redraw = redraw  # for tests and scripts: draw with the current settings
    return box


# ----------------------------------------------------------------------------------------------
# 03_nn: the neuron composer and the digit explorer
# ----------------------------------------------------------------------------------------------

# Two tanh steps of opposite sign make a bump; units 3 and 4 start switched off (output weight 0).
NEURON_DEFAULTS = {
    "w": (3.0, 3.0, 1.0, 1.0),
    "b": (3.0, -3.0, 0.0, 0.0),
    "v": (1.0, -1.0, 0.0, 0.0),
    "c": 0.0,
}


def neuron_sum(x, w, b, v, c: float = 0.0):
    """The output of one hidden layer of tanh units and a linear output. Taught in 03_nn.

    `x` is a 1-D array of inputs; unit i computes `v[i] * tanh(w[i] * x + b[i])` and the network
    outputs their sum plus `c`. Returns `(units, total)`: an array (len(w), len(x)) with each unit's
    contribution, and the (len(x),) output.
    """
    x = _np.asarray(x, dtype=_np.float64)
    w, b, v = (_np.asarray(t, dtype=_np.float64).reshape(-1, 1) for t in (w, b, v))
    if not (w.shape == b.shape == v.shape):
        raise ValueError(f"w, b and v need one entry per unit, got {len(w)}, {len(b)} and {len(v)}")
    units = v * _np.tanh(w * x + b)
    return units, units.sum(axis=0) + float(c)


def draw_neuron_composer(w=NEURON_DEFAULTS["w"], b=NEURON_DEFAULTS["b"], v=NEURON_DEFAULTS["v"],
                         c: float = NEURON_DEFAULTS["c"], n_units: int = 2, x_range=(-5.0, 5.0)):
    """Draw each tanh unit's contribution and their sum (DLwPT fig. 6.6, live). Taught in 03_nn.

    Uses the first `n_units` (2-4) entries of `w`, `b` and `v`. Left: unit i's curve
    `v[i] * tanh(w[i] x + b[i])`, each a step whose position is -b/w, whose steepness is w and whose
    height is 2 v. Right: the network's output, their sum plus `c`. Returns that output as an array
    over 401 points of `x_range`. This is the draw function of `neuron_composer`.
    """
    plt = _plt()
    n = int(n_units)
    if not 1 <= n <= len(w):
        raise ValueError(f"n_units must be between 1 and {len(w)}, got {n_units}")
    x = _np.linspace(float(x_range[0]), float(x_range[1]), 401)
    units, total = neuron_sum(x, w[:n], b[:n], v[:n], c)
    fig, (ax_units, ax_sum) = plt.subplots(1, 2, figsize=(10.0, 3.4), sharey=True)
    for i, curve in enumerate(units):
        ax_units.plot(x, curve, label=f"unit {i + 1}: {v[i]:+.1f}·tanh({w[i]:.1f}x {b[i]:+.1f})")
    ax_units.set(xlabel="x", ylabel="contribution", title="each hidden unit, scaled by its output weight")
    ax_units.legend(fontsize=7, loc="lower right")
    ax_sum.plot(x, total, color="k", lw=2)
    ax_sum.set(xlabel="x", title=f"network output: the sum{' + c' if c else ''}")
    fig.tight_layout()
    plt.show()
    return total


def neuron_composer(n_max: int = 4):
    """Widget: sliders for the weights and biases of up to four tanh units and their output weights. Taught in 03_nn.

    Each change redraws `draw_neuron_composer`. Returns the ipywidgets object (a notebook shows it).
    """
    import ipywidgets as widgets

    def slider(value, lo, hi, description):
        return widgets.FloatSlider(value=value, min=lo, max=hi, step=0.1, description=description,
                                   continuous_update=False, readout_format=".1f",
                                   layout=widgets.Layout(width="250px"))

    controls = {"n_units": widgets.IntSlider(value=2, min=2, max=n_max, description="units",
                                             continuous_update=False)}
    for i in range(n_max):
        controls[f"w{i + 1}"] = slider(NEURON_DEFAULTS["w"][i], -6.0, 6.0, f"w{i + 1}")
        controls[f"b{i + 1}"] = slider(NEURON_DEFAULTS["b"][i], -6.0, 6.0, f"b{i + 1}")
        controls[f"v{i + 1}"] = slider(NEURON_DEFAULTS["v"][i], -2.0, 2.0, f"v{i + 1}")
    controls["c"] = slider(NEURON_DEFAULTS["c"], -2.0, 2.0, "c")

    def draw(**values):
        k = range(1, n_max + 1)
        draw_neuron_composer(w=[values[f"w{i}"] for i in k], b=[values[f"b{i}"] for i in k],
                             v=[values[f"v{i}"] for i in k], c=values["c"], n_units=values["n_units"])

    rows = [widgets.HBox([controls[f"{p}{i + 1}"] for p in "wbv"]) for i in range(n_max)]
    layout = widgets.VBox([widgets.HBox([controls["n_units"], controls["c"]]), *rows])
    return explorer(draw, layout=layout, **controls)


def draw_digit_explorer(model, images, labels, index: int = 0, shift: int = 0):
    """Show one digit, shifted right by `shift` pixels, and a model's class probabilities. Taught in 03_nn.

    `images` is (N, 28, 28) in [0, 1] and `labels` (N,) class indices; `model` maps a (B, 784)
    float32 batch to (B, 10) logits (it is put in eval mode and run on its own device, without
    grad). The shift is `torch.roll` along the width, so pixels leaving on the right come back on
    the left (the digits' borders are blank). Returns the 10 probabilities as a tensor.
    """
    plt = _plt()
    image = _torch.roll(_torch.as_tensor(images[int(index)], dtype=_torch.float32), int(shift), dims=-1)
    first = next(model.parameters(), None)
    device = first.device if first is not None else _torch.device("cpu")
    model.eval()
    with _torch.no_grad():
        probs = _torch.softmax(model(image.reshape(1, -1).to(device)), dim=1)[0].cpu()
    label = int(labels[int(index)])
    fig, (ax_img, ax_bar) = plt.subplots(1, 2, figsize=(8.0, 3.0), gridspec_kw={"width_ratios": [1, 2]})
    ax_img.imshow(image.numpy(), cmap="gray_r")
    ax_img.set_title(f"digit {label}, shifted {int(shift)} px")
    ax_img.axis("off")
    colours = ["C2" if k == label else "C0" for k in range(len(probs))]
    ax_bar.bar(range(len(probs)), probs.numpy(), color=colours)
    ax_bar.set(xticks=range(len(probs)), ylim=(0, 1), xlabel="class", ylabel="probability",
               title=f"predicted {int(probs.argmax())} (true class in green)")
    fig.tight_layout()
    plt.show()
    return probs


def digit_explorer(model, images, labels):
    """Widget: pick a validation digit and a shift; see the image and the model's probabilities. Taught in 03_nn.

    Each change redraws `draw_digit_explorer`. Returns the ipywidgets object (a notebook shows it).
    """
    import ipywidgets as widgets

    def draw(index=0, shift=0):
        draw_digit_explorer(model, images, labels, index=index, shift=shift)

    return explorer(
        draw,
        index=widgets.IntSlider(value=0, min=0, max=len(images) - 1, description="digit",
                                continuous_update=False),
        shift=widgets.IntSlider(value=0, min=-6, max=6, description="shift (px)", continuous_update=False),
    )


# ----------------------------------------------------------------------------------------------
# 05_nlp: the language-model batch layout and recurrent cell diagrams
# ----------------------------------------------------------------------------------------------

def lm_layout(n_tokens: int, bs: int, seq_len: int) -> dict:
    """Where fastai's `LMDataLoader(shuffle=False)` puts each token of one stream. Taught in 05_nlp.

    One token is kept back so that the last input has a target; the rest is cut to a multiple of
    `bs` and split into `bs` rows of `row_len = (n_tokens - 1) // bs` consecutive tokens. Batch k
    takes columns `k * seq_len` onwards (the last batch may be shorter); its targets are the same
    positions plus one. Returns {"row_len", "n_batches", "batch_lens", "dropped"}, where
    `dropped` lists the stream positions that appear in no input and no target.
    """
    n_tokens, bs, seq_len = int(n_tokens), int(bs), int(seq_len)
    row_len = (n_tokens - 1) // bs
    if row_len < 1:
        raise ValueError(f"{n_tokens} tokens are too few for {bs} rows")
    n_batches = -(-row_len // seq_len)
    batch_lens = [min(seq_len, row_len - k * seq_len) for k in range(n_batches)]
    return {"row_len": row_len, "n_batches": n_batches, "batch_lens": batch_lens,
            "dropped": list(range(bs * row_len + 1, n_tokens))}


def draw_lm_batches(n_tokens: int, bs: int, seq_len: int, labels=None, title: str | None = None):
    """Draw a token stream laid out for language modelling, coloured by batch. Taught in 05_nlp.

    Row i of the grid is the i-th of `bs` sub-streams; each cell is one token, coloured by the
    batch whose input `x` it belongs to (see `lm_layout`). The grey cell at the end of a row is
    the token after the row: only ever a target. The dashed outline marks the first batch's
    targets `y`, the solid one its inputs `x`: the same rows, one column to the right. Cells show
    `labels[position]` when `labels` (a sequence of strings, one per token) is given, otherwise
    nothing. Tokens used by no batch are listed under the grid. Returns the Figure (not shown).
    """
    import matplotlib.patches as mpatches

    plt = _plt()
    lay = lm_layout(n_tokens, bs, seq_len)
    row_len = lay["row_len"]
    if labels is not None and len(labels) != n_tokens:
        raise ValueError(f"labels has {len(labels)} entries for {n_tokens} tokens")
    colours = plt.get_cmap("tab10").colors
    fig, ax = plt.subplots(figsize=(max(4.0, 0.42 * (row_len + 1) + 1.6), 0.42 * bs + 1.4))
    for i in range(bs):
        for j in range(row_len + 1):
            pos = i * row_len + j
            fill = "#dddddd" if j == row_len else colours[(j // seq_len) % 10]
            ax.add_patch(mpatches.Rectangle((j, bs - 1 - i), 1, 1, facecolor=fill, edgecolor="white",
                                            alpha=1.0 if j == row_len else 0.55))
            if labels is not None:
                ax.text(j + 0.5, bs - 0.5 - i, str(labels[pos]), ha="center", va="center", fontsize=8)
    first = lay["batch_lens"][0]
    ax.add_patch(mpatches.Rectangle((0, 0), first, bs, fill=False, edgecolor="k", lw=2, label="x of batch 1"))
    ax.add_patch(mpatches.Rectangle((1, -0.08), first, bs + 0.16, fill=False, edgecolor="k", lw=1.5,
                                    linestyle="--", label="y of batch 1"))
    handles = [mpatches.Patch(color=colours[k % 10], alpha=0.55, label=f"batch {k + 1} ({bs}, {n})")
               for k, n in enumerate(lay["batch_lens"])]
    handles.append(mpatches.Patch(color="#dddddd", label="after the row: a target"))
    ax.legend(handles=handles + ax.patches[-2:], loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.set(xlim=(-0.2, row_len + 1.2), ylim=(-0.4, bs + 0.4), aspect="equal")
    ax.set_xticks([j + 0.5 for j in range(row_len + 1)], [str(j) for j in range(row_len + 1)], fontsize=7)
    ax.set_yticks([bs - 0.5 - i for i in range(bs)], [f"row {i}" for i in range(bs)], fontsize=8)
    ax.grid(False)
    ax.tick_params(length=0)
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)
    dropped = lay["dropped"]
    note = (f"unused: {len(dropped)} token{'s' if len(dropped) != 1 else ''} at the end" if dropped
            else "every token used")
    ax.set_xlabel(f"column (position in the row)  ·  {note}", fontsize=8)
    ax.set_title(title or f"{n_tokens} tokens, bs={bs}, seq_len={seq_len}: {lay['n_batches']} batches",
                 fontsize=10)
    fig.tight_layout()
    return fig


# Node kinds of the cell diagrams: a layer (rectangle, learned weights), a pointwise op (circle),
# an input/output (plain label) and a concatenation (grey box).
_CELL_STYLE = {
    "layer": dict(boxstyle="round,pad=0.35", fc="#fde3c4", ec="#c77d1e"),
    "op": dict(boxstyle="circle,pad=0.25", fc="#dbe9f6", ec="#3b75af"),
    "io": dict(boxstyle="round,pad=0.2", fc="white", ec="none"),
    "cat": dict(boxstyle="round,pad=0.2", fc="#eeeeee", ec="#888888"),
}

# name: (x, y, label, kind); edges: (source, target, optional waypoints)
_CELLS = {
    "rnn": {
        "title": "RNN cell: h' = tanh([x, h]·W + b)",
        "nodes": {
            "h": (0.0, 1.0, r"$h_{t-1}$", "io"), "x": (2.0, -0.6, r"$x_t$", "io"),
            "lin": (2.0, 1.0, r"$[x, h]\cdot W + b$", "layer"), "tanh": (4.0, 1.0, "tanh", "op"),
            "hout": (6.0, 1.0, r"$h_t$", "io"), "out": (4.0, 2.6, r"$y_t = h_t\cdot V + c$", "layer"),
        },
        "edges": [("h", "lin"), ("x", "lin"), ("lin", "tanh"), ("tanh", "hout"), ("tanh", "out")],
    },
    "lstm": {
        "title": "LSTM cell: c' = f⊙c + i⊙g,  h' = o⊙tanh(c')",
        "nodes": {
            "c": (0.0, 3.0, r"$c_{t-1}$", "io"), "h": (0.0, 0.0, r"$h_{t-1}$", "io"),
            "x": (1.0, -1.2, r"$x_t$", "io"), "hx": (1.0, 0.0, "[x, h]", "cat"),
            "f": (2.2, 1.2, "σ\nforget f", "layer"), "i": (3.5, 1.2, "σ\ninput i", "layer"),
            "g": (4.8, 1.2, "tanh\ncand. g", "layer"), "o": (6.1, 1.2, "σ\noutput o", "layer"),
            "fx": (2.2, 3.0, "×", "op"), "ig": (4.15, 2.2, "×", "op"), "plus": (4.15, 3.0, "+", "op"),
            "tc": (7.3, 2.2, "tanh", "op"), "ox": (7.3, 1.2, "×", "op"),
            "cout": (9.0, 3.0, r"$c_t$", "io"), "hout": (9.0, 0.0, r"$h_t$", "io"),
        },
        "edges": [("c", "fx"), ("fx", "plus"), ("plus", "cout"), ("h", "hx"), ("x", "hx"),
                  ("hx", "f", [(2.2, 0.0)]), ("hx", "i", [(3.5, 0.0)]), ("hx", "g", [(4.8, 0.0)]),
                  ("hx", "o", [(6.1, 0.0)]), ("f", "fx"), ("i", "ig", [(3.5, 2.2)]), ("g", "ig", [(4.8, 2.2)]),
                  ("ig", "plus"), ("plus", "tc", [(7.3, 3.0)]), ("tc", "ox"), ("o", "ox"),
                  ("ox", "hout", [(8.2, 1.2), (8.2, 0.0)])],
    },
    "gru": {
        "title": "GRU cell (PyTorch's form): h' = (1−z)⊙n + z⊙h",
        "nodes": {
            "h": (0.0, 3.2, r"$h_{t-1}$", "io"), "x": (1.2, -1.2, r"$x_t$", "io"),
            "hx": (1.2, 0.0, "[x, h]", "cat"),
            "z": (2.5, 1.0, "σ\nupdate z", "layer"), "r": (3.7, 1.0, "σ\nreset r", "layer"),
            "n": (5.7, 1.0, "tanh(W$_{in}$x + b$_{in}$\n+ r⊙(W$_{hn}$h + b$_{hn}$))\ncandidate n", "layer"),
            "zx": (2.5, 3.2, "×", "op"), "oneminus": (4.6, 2.4, "1−z", "op"), "nx": (7.4, 2.4, "×", "op"),
            "plus": (8.3, 3.2, "+", "op"), "hout": (9.4, 3.2, r"$h_t$", "io"),
        },
        "edges": [("h", "zx"), ("zx", "plus"), ("plus", "hout"), ("h", "hx", [(0.5, 3.2), (0.5, 0.0)]),
                  ("x", "hx"), ("hx", "z", [(2.5, 0.0)]), ("hx", "r", [(3.7, 0.0)]), ("hx", "n", [(5.7, 0.0)]),
                  ("z", "zx"), ("z", "oneminus", [(2.5, 2.4)]), ("r", "n", [(3.7, 1.8), (5.7, 1.8)]),
                  ("oneminus", "nx"), ("n", "nx", [(7.4, 1.0)]), ("nx", "plus", [(8.3, 2.4)])],
    },
}


def _cell_nodes(kind: str, ax) -> dict:
    """Place the nodes of one cell diagram; returns {name: Text artist}."""
    spec = _CELLS[kind]
    texts = {}
    for name, (x, y, label, style) in spec["nodes"].items():
        texts[name] = ax.text(x, y, label, ha="center", va="center", fontsize=8 if style != "io" else 10,
                              bbox=_CELL_STYLE[style], zorder=3, gid=f"node:{name}")
    xs = [p[0] for p in spec["nodes"].values()]
    ys = [p[1] for p in spec["nodes"].values()]
    ax.set(xlim=(min(xs) - 0.8, max(xs) + 0.8), ylim=(min(ys) - 0.7, max(ys) + 0.7))
    ax.set_title(spec["title"], fontsize=10)
    ax.axis("off")
    return texts


def _box_exit(ax, text, inside, outside):
    """Where the segment from `outside` to `inside` (data coordinates) meets the box of `text`."""
    to_data = ax.transData.inverted()
    (x0, y0), (x1, y1) = to_data.transform(text.get_bbox_patch().get_window_extent().get_points())
    (cx, cy), (px, py) = inside, outside
    ts = []
    for lo, hi, c, p in ((x0, x1, cx, px), (y0, y1, cy, py)):
        if p != c:
            ts += [t for t in ((lo - c) / (p - c), (hi - c) / (p - c)) if t > 0]
    t = min(ts) if ts else 0.0
    return (cx + t * (px - cx), cy + t * (py - cy))


def _cell_edges(kind: str, ax, texts: dict) -> None:
    """Draw the arrows of one cell diagram, ending at the edge of each target box (after layout)."""
    nodes = _CELLS[kind]["nodes"]
    for edge in _CELLS[kind]["edges"]:
        src, dst, via = edge[0], edge[1], (edge[2] if len(edge) > 2 else [])
        points = [nodes[src][:2], *via, nodes[dst][:2]]
        for (x0, y0), (x1, y1) in zip(points[:-2], points[1:-1]):
            ax.plot([x0, x1], [y0, y1], color="#555555", lw=1.2, zorder=1)
        tip = _box_exit(ax, texts[dst], points[-1], points[-2])
        ax.annotate("", xy=tip, xytext=points[-2], zorder=2,
                    arrowprops=dict(arrowstyle="-|>", color="#555555", lw=1.2, shrinkA=0, shrinkB=1))


def draw_recurrent_cells(kinds=("rnn", "lstm", "gru")):
    """Diagrams of one step of recurrent cells, one above the other. Taught in 05_nlp.

    `kinds` lists any of "rnn", "lstm" and "gru". Orange boxes hold learned weights (each gate is
    σ or tanh of a linear function of x_t and h_{t-1}), blue circles are pointwise operations,
    arrows carry vectors. The GRU is drawn in PyTorch's form: the reset gate multiplies
    W_hn·h + b_hn, after the matrix product. Returns the Figure (not shown), one Axes per kind.
    """
    plt = _plt()
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    for kind in kinds:
        if kind not in _CELLS:
            raise ValueError(f"kind must be one of {', '.join(_CELLS)}, got {kind!r}")
    heights = [0.7 if k == "rnn" else 1.0 for k in kinds]
    fig, axes = plt.subplots(len(kinds), 1, figsize=(8.0, 3.4 * sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    texts = [_cell_nodes(kind, ax) for kind, ax in zip(kinds, axes[:, 0])]
    fig.tight_layout()
    fig.canvas.draw()  # box sizes are known only after a draw
    for kind, ax, t in zip(kinds, axes[:, 0], texts):
        _cell_edges(kind, ax, t)
    return fig
