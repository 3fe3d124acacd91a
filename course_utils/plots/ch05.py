"""Figures of 05_nlp: the language-model batch layout and diagrams of recurrent cells.

`draw_lm_batches` colours a token stream by batch, as `lm_stream.lm_layout` lays it out;
`draw_recurrent_cells` draws one step of an RNN, LSTM and GRU cell.
"""

from __future__ import annotations

from course_utils.plots.lm_stream import lm_layout
from course_utils.plots.widgets import pyplot

__all__ = ["draw_lm_batches", "draw_recurrent_cells"]


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

    plt = pyplot()
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
    plt = pyplot()
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
