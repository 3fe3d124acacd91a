"""The 01_tensors figures in course_utils.plots: storage diagrams (ch01), the op-chain reader (op_chain),
CT views (ct_views), the explorer machinery (widgets), and the package's re-exports."""

import matplotlib.colors
import numpy as np
import pytest
import torch

from course_utils import plots
from course_utils.plots import ch01, ct_views, op_chain, widgets


def _views():
    base = torch.arange(24.0)
    return [
        base.view(4, 6),
        base.view(4, 6).t(),
        base.view(2, 3, 4).permute(2, 0, 1),
        base.view(4, 6)[1:, ::2],
        base[5:9].expand(3, 4),
        base.view(4, 6)[2, 3],
        base[20:],
    ]


@pytest.mark.parametrize("view", _views())
def test_addresses_and_storage_agree_with_indexing(view):
    flat = ch01.storage_elements(view)
    assert flat.shape == (24,)
    assert torch.equal(flat, torch.arange(24.0))
    addresses = ch01.element_addresses(view)
    assert addresses.shape == view.shape
    assert torch.equal(flat[addresses], view)


def test_storage_elements_counts_elements_not_bytes():
    for dtype in (torch.float64, torch.int16, torch.uint8):
        t = torch.arange(10).to(dtype)[3:7]
        assert ch01.storage_elements(t).numel() == 10
        assert ch01.storage_elements(t).dtype == dtype


def test_describe_view_names_offset_stride_and_sharing():
    base = torch.arange(12).view(3, 4)
    line = ch01.describe_view(base[:, 1:].t(), base)
    assert "size (3, 3)" in line and "offset 1" in line and "stride (1, 4)" in line
    assert "contiguous False" in line and "shares memory with base True" in line
    assert "shares memory with base False" in ch01.describe_view(base.t().contiguous(), base)


@pytest.mark.parametrize("view", _views() + [torch.tensor(3.0), torch.zeros(0, 3)])
def test_draw_storage_draws_any_view(view):
    fig = ch01.draw_storage(view)
    assert len(fig.axes) == 2
    assert fig._suptitle is not None


def test_draw_storage_refuses_huge_storages():
    with pytest.raises(ValueError, match="at most"):
        ch01.draw_storage(torch.zeros(1000)[:3])


def test_draw_storage_colours_only_the_cells_a_view_uses():
    base = torch.arange(6.0)
    fig = ch01.draw_storage(base[::2])
    storage_axes = fig.axes[1]
    faces = [p.get_facecolor() for p in storage_axes.patches]
    grey = matplotlib.colors.to_rgba("#dddddd")
    assert [f == grey for f in faces] == [False, True, False, True, False, True]


@pytest.mark.parametrize(
    "chain, make",
    [
        ("", lambda t: t),
        ("[:, 1:].t()", lambda t: t[:, 1:].t()),
        ("[1]", lambda t: t[1]),
        ("[None, :, 1]", lambda t: t[None, :, 1]),
        ("[..., ::2]", lambda t: t[..., ::2]),
        (".transpose(0, 1).contiguous()", lambda t: t.transpose(0, 1).contiguous()),
        (".unsqueeze(0).expand(2, -1, -1)", lambda t: t.unsqueeze(0).expand(2, -1, -1)),
        (".view(-1)", lambda t: t.view(-1)),
        (".T", lambda t: t.T),
    ],
)
def test_apply_ops_matches_python(chain, make):
    t = torch.arange(12).view(3, 4)
    got, expected = op_chain.apply_ops(t, chain), make(t)
    assert torch.equal(got, expected)
    assert got.stride() == expected.stride() and got.storage_offset() == expected.storage_offset()


@pytest.mark.parametrize(
    "chain",
    [".__class__", "[__import__('os')]", ".numpy()", ".view(dtype=1)", "[1.5]", ".t(); 1", "[:, (lambda: 1)()]", "+1", "[x]"],
)
def test_apply_ops_refuses_anything_else(chain):
    with pytest.raises(ValueError):
        op_chain.apply_ops(torch.arange(12).view(3, 4), chain)


def test_apply_ops_passes_torch_errors_through():
    with pytest.raises(RuntimeError):
        op_chain.apply_ops(torch.arange(12).view(3, 4), ".t().view(-1)")


def test_show_view_uses_arange_base():
    view, fig = ch01.show_view((3, 4), "[:, 1:].t()")
    assert torch.equal(view, torch.arange(12).view(3, 4)[:, 1:].t())
    assert "offset 1" in fig._suptitle.get_text()


def test_stride_explorer_builds_and_redraws():
    box = ch01.stride_explorer()
    (shape_box, example_box), chain_box, out = box.children[0].children, box.children[1], box.children[2]
    example_box.value = ".t().contiguous()"
    assert chain_box.value == ".t().contiguous()"
    shape_box.value = (2, 3, 4)
    chain_box.value = ".permute(2, 0, 1)"
    chain_box.value = ".nonsense()"  # reported inside the widget, not raised
    assert out is not None


def test_draw_broadcast_shapes_titles():
    ok = ch01.draw_broadcast_shapes((3, 1, 1), (3, 300, 451))
    assert "result (3, 300, 451)" in ok.axes[0].get_title()
    bad = ch01.draw_broadcast_shapes((2, 3), (4, 3))
    assert "incompatible" in bad.axes[0].get_title()
    scalar = ch01.draw_broadcast_shapes((), (2,))
    assert "result (2,)" in scalar.axes[0].get_title()


@pytest.mark.parametrize("small, shape, panels", [(torch.ones(3, 1, 1), (3, 4, 5), 3), (torch.ones(4), (2, 4), 1),
                                                  (torch.ones(1), (5,), 1), (torch.ones(2, 1, 1, 3), (2, 2, 2, 3), 4)])
def test_draw_expand(small, shape, panels):
    fig = ch01.draw_expand(small, shape)
    assert len(fig.axes) == panels
    big = small.expand(*shape)
    title = fig._suptitle.get_text()
    assert str(tuple(big.stride())) in title and f"read {small.numel()} stored numbers" in title


def test_draw_boxed_vs_unboxed():
    fig = ch01.draw_boxed_vs_unboxed([1.0, 2.5, 3.0])
    assert len(fig.axes) == 2
    assert any("12 bytes" in t.get_text() for t in fig.axes[1].texts)


def _volume():
    return np.arange(6 * 8 * 10, dtype=np.int16).reshape(6, 8, 10)


@pytest.mark.parametrize("axis, shape, aspect", [(0, (8, 10), 1.0), (1, (6, 10), 1.5 / 0.5), (2, (6, 8), 1.5 / 1.0)])
def test_draw_ct_slice_shapes_and_aspect(axis, shape, aspect):
    ax = ct_views.draw_ct_slice(_volume(), spacing=(1.5, 1.0, 0.5) if axis == 1 else (1.5, 1.0, 1.0), axis=axis,
                             level=100, width=200)
    image = ax.get_images()[0]
    assert image.get_array().shape == shape
    assert image.get_clim() == (0.0, 200.0)
    assert ax.get_aspect() == pytest.approx(aspect)


def test_draw_ct_slice_accepts_tensors_and_index():
    vol = torch.from_numpy(_volume())
    ax = ct_views.draw_ct_slice(vol, axis=0, index=2)
    assert np.array_equal(ax.get_images()[0].get_array(), _volume()[2][::-1])
    assert "axial 2" in ax.get_title()


def test_show_ct_planes_and_slicer():
    fig = ct_views.show_ct_planes(_volume(), (1.5, 1.0, 1.0))
    assert len(fig.axes) == 3
    slicer = ct_views.ct_slicer(_volume(), (1.5, 1.0, 1.0))
    controls = slicer.children[0].children
    assert [c.description for c in controls] == ["axis", "position", "level", "width"]
    controls[1].value = 0.2  # moving a control draws a slice
    assert hasattr(slicer, "redraw")


def test_slicer_starts_on_the_view_the_chapter_draws_statically(monkeypatch):
    """01_tensors draws `draw_ct_slice(vol, spacing, axis=0, level=40, width=400)` beside the slicer for readers
    without widgets: the slicer's first picture must be that one."""
    plt = plots.pyplot()
    monkeypatch.setattr(plt, "show", lambda *a, **k: None)
    slicer = ct_views.ct_slicer(_volume(), (1.5, 1.0, 1.0))
    plt.close("all")
    slicer.redraw()
    started = plt.gcf().axes[0]
    static = ct_views.draw_ct_slice(_volume(), (1.5, 1.0, 1.0), axis=0, level=40, width=400)
    assert np.array_equal(started.get_images()[0].get_array(), static.get_images()[0].get_array())
    assert started.get_title() == static.get_title() and started.get_images()[0].get_clim() == static.get_images()[0].get_clim()


def test_explorers_show_one_line_where_widgets_do_not_run():
    box = ch01.stride_explorer()
    assert box._repr_mimebundle_()["text/plain"] == widgets.STATIC_TEXT == repr(box)
    assert len(widgets.STATIC_TEXT) <= 110  # ipywidgets cuts text/plain there
    assert repr(ct_views.ct_slicer(_volume())) == widgets.STATIC_TEXT


def test_explorer_draws_nothing_until_a_control_changes():
    import ipywidgets

    calls = []
    slider = ipywidgets.IntSlider(value=1, min=0, max=5)
    box = widgets.explorer(lambda n: calls.append(n), n=slider)
    assert calls == []  # building it computes nothing (a scripted run could hang on a drawing)
    slider.value = 3
    assert calls == [3]
    box.redraw()
    assert calls == [3, 3]


def test_the_package_re_exports_every_public_name_of_its_modules():
    modules = [widgets, ch01, op_chain, ct_views, plots.ch02, plots.descent, plots.ch03, plots.ch04, plots.ch05,
               plots.ch06, plots.ch07, plots.ch08, plots.ch09, plots.thresholds, plots.lm_stream]
    assert sorted(plots.__all__) == sorted(name for module in modules for name in module.__all__)
    assert len(set(plots.__all__)) == len(plots.__all__), "one name, one module"
    for module in modules:
        for name in module.__all__:
            assert getattr(plots, name) is getattr(module, name), f"plots.{name} is not {module.__name__}.{name}"


def test_importing_plots_draws_nothing_and_loads_neither_pyplot_nor_ipywidgets():
    import subprocess
    import sys

    code = ("import sys, course_utils.plots\n"
            "print(sorted(m for m in ('matplotlib.pyplot', 'ipywidgets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
