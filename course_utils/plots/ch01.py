"""Figures and the stride explorer of 01_tensors: memory diagrams, views over storage, broadcasting.

A tensor as a window (size, offset, stride) onto one flat storage: `draw_storage`, `show_view` and
`stride_explorer` draw it, `draw_broadcast_shapes` and `draw_expand` picture broadcasting, and
`draw_boxed_vs_unboxed` compares a Python list with a tensor. The CT views of the chapter live in
`ct_views`, the reader of typed op chains in `op_chain`.
"""

from __future__ import annotations

import numpy as np
import torch

from course_utils.plots.op_chain import apply_ops
from course_utils.plots.widgets import explorer_box, pyplot

__all__ = [
    "describe_view",
    "draw_boxed_vs_unboxed",
    "draw_broadcast_shapes",
    "draw_expand",
    "draw_storage",
    "element_addresses",
    "show_view",
    "storage_elements",
    "stride_explorer",
]


def storage_elements(t: torch.Tensor) -> torch.Tensor:
    """The whole storage behind `t` as a flat 1-D view (no copy). Used in 01_tensors.

    A tensor is a window (size, storage offset, stride) onto one flat buffer; this returns that
    buffer, element by element, with `as_strided((n,), (1,), 0)`.
    """
    n = t.untyped_storage().nbytes() // t.element_size()
    return torch.as_strided(t.detach(), (n,), (1,), 0)


def element_addresses(t: torch.Tensor) -> torch.Tensor:
    """For every element of `t`, its position in the storage: offset + sum(stride[i] * index[i]).

    Returns an int64 tensor of t's shape. Used in 01_tensors (by `draw_storage` and `draw_expand`).
    """
    n = t.untyped_storage().nbytes() // t.element_size()
    positions = torch.arange(max(n, 1))
    return torch.as_strided(positions, tuple(t.shape), tuple(t.stride()), t.storage_offset())


def _as_grid(x: torch.Tensor) -> torch.Tensor:
    """Show any tensor as rows x columns: scalars as 1x1, 1-D as one row, leading dims merged."""
    if x.ndim == 0:
        return x.reshape(1, 1)
    if x.ndim == 1:
        return x.reshape(1, -1)
    return x.reshape(-1, x.shape[-1])


def _fmt(v: float) -> str:
    return f"{int(v)}" if float(v).is_integer() else f"{v:.3g}"


def describe_view(t: torch.Tensor, base: torch.Tensor | None = None) -> str:
    """One line: size, storage offset, stride, contiguity and, given `base`, shared memory. Used in 01_tensors."""
    line = (
        f"size {tuple(t.shape)}  offset {t.storage_offset()}  stride {tuple(t.stride())}  "
        f"contiguous {t.is_contiguous()}"
    )
    if base is not None:
        shared = t.untyped_storage().data_ptr() == base.untyped_storage().data_ptr()
        line += f"  shares memory with base {shared}"
    return line


def draw_storage(t: torch.Tensor, title: str | None = None, base: torch.Tensor | None = None, max_elements: int = 96):
    """Draw a view over its flat storage: the view's grid on top, the storage below. Taught in 01_tensors.

    Each element of the view is coloured by its storage address, and the storage cells it uses carry
    the same colour, so you can see which numbers a slice, transpose or expand really touches.
    Storage cells the view does not use stay grey. Returns the figure.
    """
    plt = pyplot()
    from matplotlib.patches import Rectangle

    t = t.detach().cpu() if t.device.type != "cpu" else t.detach()
    storage = storage_elements(t).to(torch.float64)
    n = storage.numel()
    if n > max_elements:
        raise ValueError(f"draw_storage shows at most {max_elements} storage elements, this one has {n}.")
    addresses = _as_grid(element_addresses(t)) if t.numel() else torch.zeros(0, 0, dtype=torch.long)
    values = _as_grid(t.to(torch.float64)) if t.numel() else torch.zeros(0, 0)
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



def show_view(shape=(3, 4), chain: str = "[:, 1:].t()"):
    """Draw what a chain of ops does to `torch.arange(n).reshape(shape)`. Taught in 01_tensors.

    The stride explorer's draw function: the base holds 0, 1, 2, ... so every value is also its
    address in the base's storage. Returns (the view, the figure).
    """
    shape = tuple(int(s) for s in shape)
    base = torch.arange(int(np.prod(shape)) if shape else 1).reshape(shape)
    view = apply_ops(base, chain)
    fig = draw_storage(view, title=f"base{list(shape)}{chain}:  " + describe_view(view, base))
    return view, fig


def stride_explorer(shapes=((3, 4), (2, 3, 4), (4, 4), (12,))):
    """Widget: pick a base shape and type a chain of ops; see size, offset, stride and storage.

    Taught in 01_tensors. Returns the ipywidgets box (a notebook displays it).
    """
    import ipywidgets as widgets
    from IPython.display import display

    plt = pyplot()
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
    box = explorer_box([widgets.HBox([shape_box, example_box]), chain_box, out])
    box.redraw = redraw
    return box


def draw_broadcast_shapes(a_shape, b_shape, names=("a", "b")):
    """Right-align two shapes, mark the dimensions that stretch, and show the result. Taught in 01_tensors.

    Size-1 or missing dimensions are drawn in orange (they stretch); a clash is drawn in red and the
    result row says "incompatible". Returns the figure.
    """
    plt = pyplot()
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


def draw_expand(t: torch.Tensor, shape, title: str | None = None):
    """Draw `t.expand(shape)` with every cell labelled by the storage address it reads. Taught in 01_tensors.

    Cells that show the same address are one number in memory: the stride-0 dimensions repeat it
    without copying. The last two dimensions form each panel; a leading dimension gives panels.
    Returns the figure.
    """
    plt = pyplot()
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
    plt = pyplot()
    from matplotlib.patches import FancyArrowPatch, Rectangle

    values = list(values)
    n = len(values)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax in (left, right):
        ax.set_axis_off()
    # the list: a row of pointers, arrows to objects scattered below
    rng = np.random.default_rng(0)
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

