"""The explorer machinery every chapter's figures share: `explorer()` and the lazy pyplot import.

Every explorer is an `explorer_box`: where widgets do not run (GitHub, nbviewer, the course's stored
outputs) its cell shows one line saying what it is, not the widget's `VBox(children=(...))` repr, and
the chapter draws its default view with a plain call in the cell beside it.

Used by the figure modules of 01_tensors to 05_nlp (`ch01` … `ch05`, `ct_views`); 05_nlp also calls
`explorer` directly. Importing this module imports neither matplotlib nor ipywidgets: both load
inside the functions, the first time a figure or an explorer is made.
"""

from __future__ import annotations

__all__ = ["STATIC_TEXT", "explorer", "explorer_box", "pyplot"]

# What a page that does not run widgets shows for an explorer's cell (ipywidgets cuts text/plain at 110 characters).
STATIC_TEXT = "[interactive explorer: run the notebook to use it; the cell beside it draws its default view]"
_box_class = None


def pyplot():
    """`matplotlib.pyplot`, imported on first use. Used in 01_tensors to 05_nlp, by every figure here."""
    import matplotlib.pyplot as plt

    return plt


def explorer(draw, layout=None, note: str = "Move a control to draw with those settings.", **controls):
    """An ipywidgets explorer that calls `draw(**values)` whenever a control changes. Taught in 05_nlp.

    The explorers of 01_tensors, 03_nn and 04_cnns are built on it; 05_nlp calls it directly.

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
    box = explorer_box([layout if layout is not None else widgets.VBox(list(controls.values())), out])
    box.redraw = redraw
    return box


def explorer_box(children):
    """An ipywidgets VBox of `children` whose text form is `STATIC_TEXT`. Used in 01_tensors to 05_nlp (every explorer).

    A notebook front end shows the widget; a page without widgets shows the text/plain form, which for
    a plain VBox lists every control's settings.
    """
    global _box_class
    import ipywidgets as widgets

    if _box_class is None:

        class ExplorerBox(widgets.VBox):
            def __repr__(self) -> str:
                return STATIC_TEXT

        _box_class = ExplorerBox
    return _box_class(children)
