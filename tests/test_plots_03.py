"""The 03_nn figures in course_utils.plots.ch03: the neuron composer and the digit explorer."""

import ipywidgets
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from course_utils.plots import ch03


def test_neuron_sum():
    x = np.linspace(-3, 3, 7)
    units, total = ch03.neuron_sum(x, w=[1.0, 2.0], b=[0.0, -1.0], v=[0.5, -1.0], c=0.25)
    assert units.shape == (2, 7)
    assert np.allclose(units[1], -np.tanh(2 * x - 1))
    assert np.allclose(total, 0.5 * np.tanh(x) - np.tanh(2 * x - 1) + 0.25)
    with pytest.raises(ValueError):
        ch03.neuron_sum(x, w=[1.0], b=[0.0, 1.0], v=[1.0])


def test_default_composer_draws_a_bump():
    total = ch03.draw_neuron_composer()
    assert total.shape == (401,)
    middle, edges = total[200], np.r_[total[:20], total[-20:]]
    assert middle > 1.9 and np.abs(edges).max() < 0.01
    assert len(plt.get_fignums()) == 1


def test_composer_uses_only_the_first_n_units():
    w, b, v = (1.0, 2.0, 3.0, 4.0), (0.0, 0.5, 1.0, -1.0), (1.0, 1.0, 5.0, 5.0)
    two = ch03.draw_neuron_composer(w, b, v, n_units=2)
    x = np.linspace(-5, 5, 401)
    assert np.allclose(two, np.tanh(x) + np.tanh(2 * x + 0.5))
    with pytest.raises(ValueError):
        ch03.draw_neuron_composer(w, b, v, n_units=5)


def test_neuron_composer_widget():
    widget = ch03.neuron_composer()
    assert isinstance(widget, ipywidgets.VBox)
    layout = widget.children[0]
    sliders = [w for box in layout.children for w in box.children]
    assert len(sliders) == 2 + 4 * 3   # units, c, and w/b/v for four units


def _tiny_digit_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(784, 10))


def test_draw_digit_explorer_probabilities():
    images = torch.rand(5, 28, 28, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 3, 4])
    model = _tiny_digit_model()
    probs = ch03.draw_digit_explorer(model, images, labels, index=2, shift=3)
    assert probs.shape == (10,) and torch.isclose(probs.sum(), torch.tensor(1.0))
    with torch.no_grad():
        expected = torch.softmax(model(torch.roll(images[2], 3, dims=-1).reshape(1, -1)), dim=1)[0]
    assert torch.allclose(probs, expected)
    assert not model.training


def test_digit_explorer_widget():
    images = torch.rand(5, 28, 28, generator=torch.Generator().manual_seed(0))
    widget = ch03.digit_explorer(_tiny_digit_model(), images, torch.arange(5))
    assert isinstance(widget, ipywidgets.VBox)
    controls = widget.children[0].children
    assert [c.description for c in controls] == ["digit", "shift (px)"]
