"""The 05_nlp figures in course_utils.plots: lm_stream.lm_layout, and ch05's batch layout and recurrent cell diagrams."""

import matplotlib.text
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from course_utils.plots import ch05, lm_stream


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit notices from the fastai import
@pytest.mark.parametrize("n_tokens, bs, seq_len", [(90, 6, 5), (25, 3, 4), (100, 4, 7), (1000, 64, 72)])
def test_lm_layout_matches_lmdataloader(n_tokens, bs, seq_len):
    from fastai.text.data import LMDataLoader

    lay = lm_stream.lm_layout(n_tokens, bs, seq_len)
    batches = list(LMDataLoader([torch.arange(n_tokens)], bs=bs, seq_len=seq_len))
    assert lay["n_batches"] == len(batches)
    assert lay["batch_lens"] == [x.shape[1] for x, _ in batches]
    assert all(x.shape[0] == bs for x, _ in batches)
    assert batches[0][0][:, 0].tolist() == [i * lay["row_len"] for i in range(bs)]
    used = set(torch.cat([torch.cat([x.flatten(), y.flatten()]) for x, y in batches]).tolist())
    assert sorted(set(range(n_tokens)) - used) == lay["dropped"]


def test_lm_layout_rejects_a_stream_shorter_than_the_rows():
    with pytest.raises(ValueError):
        lm_stream.lm_layout(5, 6, 2)


def test_draw_lm_batches_draws_one_cell_per_position_and_two_outlines():
    fig = ch05.draw_lm_batches(90, 6, 5)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    rects = [p for p in ax.patches if isinstance(p, Rectangle)]
    cells = [r for r in rects if r.get_fill()]
    outlines = [r for r in rects if not r.get_fill()]
    assert len(cells) == 6 * (14 + 1)  # 6 rows of 14 inputs, plus the token after each row
    assert len(outlines) == 2  # the x and the y of the first batch
    x_box, y_box = outlines
    assert x_box.get_width() == 5 and y_box.get_x() == 1  # y is x moved one token to the right
    assert len({tuple(c.get_facecolor()) for c in cells}) == 3 + 1  # three batches and the target-only cells
    assert not ax.texts  # no labels given: the toy's values stay hidden
    assert "3 batches" in ax.get_title()


def test_draw_lm_batches_labels_cells():
    letters = list("abcdefghijklmnopqrstuvwxy")
    fig = ch05.draw_lm_batches(25, 3, 4, labels=letters)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == 3 * 9 and texts[:9] == letters[:9]
    assert texts[9] == "i"  # row 1 starts with the token after row 0
    with pytest.raises(ValueError):
        ch05.draw_lm_batches(25, 3, 4, labels=letters[:-1])


def test_draw_recurrent_cells_one_axes_per_kind():
    fig = ch05.draw_recurrent_cells()
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("RNN") and titles[1].startswith("LSTM") and titles[2].startswith("GRU")
    for ax, kind in zip(fig.axes, ("rnn", "lstm", "gru")):
        spec = ch05._CELLS[kind]
        node_texts = [t for t in ax.texts if (t.get_gid() or "").startswith("node:")]
        assert len(node_texts) == len(spec["nodes"])
        arrows = [a for a in ax.texts if isinstance(a, matplotlib.text.Annotation)]
        assert len(arrows) == len(spec["edges"])
    gru_labels = " ".join(t.get_text() for t in fig.axes[2].texts)
    assert "r⊙(W" in gru_labels  # PyTorch's form: reset after the hidden matmul


def test_draw_recurrent_cells_single_kind_and_bad_kind():
    fig = ch05.draw_recurrent_cells("gru")
    assert len(fig.axes) == 1
    with pytest.raises(ValueError):
        ch05.draw_recurrent_cells(("rnn", "transformer"))
