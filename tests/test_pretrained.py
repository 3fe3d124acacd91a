"""The course's cached training steps (course_utils/pretrained/): 04's pretrained body, 05's ULMFiT stages 1 and 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from course_utils import pretrained
from course_utils.models import preprocess
from course_utils.data.registry import DATASETS, build_order


def test_pretrain_tiny_is_deterministic_and_learns():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(10).repeat(20)
    x = (torch.rand(200, 28, 28, generator=g) * 60).to(torch.uint8)
    x[:, :4, :] += (y * 19).to(torch.uint8)[:, None, None]  # a class-dependent stripe
    m1, info1 = pretrained.pretrain(x, y, w=4, epochs=1, per_class=10, batch_size=16)
    m2, info2 = pretrained.pretrain(x, y, w=4, epochs=1, per_class=10, batch_size=16)
    assert info1 == info2 and info1["classes"][0] == "Trouser" and len(info1["classes"]) == 8
    assert all(torch.equal(p, q) for p, q in zip(m1.state_dict().values(), m2.state_dict().values()))
    xs, ys = pretrained.pretrain_set(x, y, per_class=10)
    assert len(xs) == 80 and set(ys.tolist()) == set(range(8))


def test_registry_has_the_cached_steps():
    assert DATASETS["fmnist8_body"].files[0].endswith(".pth")
    assert DATASETS["fmnist_png"].chapters == ("04_cnns",)


# ------------------------------------------------------------------------------------------------
# 05_nlp: the Austen language model (ULMFiT stage 1)
# ------------------------------------------------------------------------------------------------


def _tiny_paragraphs():
    words = "the a lady gentleman walked talked to from house garden happy quiet and but said".split()
    g = np.random.default_rng(0)
    return [" ".join(g.choice(words, size=int(g.integers(5, 15)))).capitalize() + "." for _ in range(60)]


TINY_LM = dict(epochs=1, config={"emb_sz": 8, "n_hid": 16, "n_layers": 1}, max_vocab=100, min_freq=1, bs=4, seq_len=12)


def test_austen_paragraphs_are_blocks_between_blank_lines():
    text = "CHAPTER I\n\nIt is a truth\nuniversally acknowledged.\n \n\n\"Yes,\"  said she.\n"
    assert pretrained.austen_paragraphs(text) == ["CHAPTER I", "It is a truth universally acknowledged.", '"Yes," said she.']


def test_tiny_austen_lm_is_deterministic_leaves_the_rng_alone_and_round_trips(tmp_path):
    import random

    paragraphs = _tiny_paragraphs()
    states = (random.getstate(), np.random.get_state()[1].copy(), torch.random.get_rng_state(), torch.get_num_threads())
    learn1, info1 = pretrained.pretrain_austen_lm(paragraphs, **TINY_LM)
    learn2, info2 = pretrained.pretrain_austen_lm(paragraphs, **TINY_LM)
    assert random.getstate() == states[0] and np.array_equal(np.random.get_state()[1], states[1])
    assert torch.equal(torch.random.get_rng_state(), states[2]) and torch.get_num_threads() == states[3]
    assert info1 == info2 and info1["paragraphs"] == 60 and len(info1["history"]) == 1
    sd1, sd2 = learn1.model.state_dict(), learn2.model.state_dict()
    assert sd1.keys() == sd2.keys() and all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    folder = pretrained.save_austen_lm(learn1, info1, tmp_path / "models")
    assert sorted(p.name for p in folder.iterdir()) == ["austen_lm.json", "austen_lm.pkl", "austen_lm.pth"]
    model, vocab, info = pretrained.load_austen_lm(folder)
    assert info == json.loads(json.dumps(info1)) and vocab[:2] == ["xxunk", "xxpad"]
    assert model[0].encoder.weight.shape == (len(vocab), 8) and model[1].decoder.out_features == len(vocab)
    assert all(torch.equal(v, sd1[k]) for k, v in model.state_dict().items())


def test_load_austen_lm_names_what_is_wrong_and_the_fix(tmp_path):
    import pickle

    with pytest.raises(FileNotFoundError, match=r"austen_lm.pth, austen_lm.pkl, austen_lm.json missing.*course data austen_lm"):
        pretrained.load_austen_lm(tmp_path)
    learn, info = pretrained.pretrain_austen_lm(_tiny_paragraphs(), **TINY_LM)
    folder = pretrained.save_austen_lm(learn, info, tmp_path / "models")
    with open(folder / "austen_lm.pkl", "wb") as f:
        pickle.dump(["xxunk", "xxpad"], f)  # a vocab that is not the one saved with the weights
    with pytest.raises(ValueError, match="does not match its vocab.*course data austen_lm"):
        pretrained.load_austen_lm(folder)


def test_registry_has_the_austen_lm_cached_step():
    entry = DATASETS["austen_lm"]
    assert entry.files == pretrained.AUSTEN_LM_FILES and entry.chapters == ("05_nlp",)
    assert [s.kind for s in entry.sources] == ["course"] and "austen" in entry.sources[0].description


def test_the_cached_austen_lm_when_course_data_prepared_it():
    from course_utils.data.prepare import status

    if status("austen_lm")[0] != "ready":
        pytest.skip("austen_lm is not prepared (run `course data`); training it takes about 3 minutes")
    folder, info = pretrained.austen_lm()
    assert (folder / "austen_lm.pth").is_file() and (folder / "austen_lm.pkl").is_file()
    assert info["paragraphs"] == 5537 and info["words"] == 362291 and info["vocab_size"] == 3008
    assert info["valid_accuracy"] >= 0.18 and info["valid_perplexity"] < 100
    model, vocab, _ = pretrained.load_austen_lm(folder)
    assert model[0].encoder.weight.shape == (3008, 64) and len(model[0].rnns) == 2
    assert model[1].decoder.weight.shape == (3008, 64)


# ------------------------------------------------------------------------------------------------
# 05_nlp: the review language model (ULMFiT stage 2, cached)
# ------------------------------------------------------------------------------------------------


def test_review_lm_text_drops_html_breaks_and_keeps_the_first_words():
    assert pretrained.review_lm_text("Great<br />coffee,  really<br /><br />good", 3) == "Great coffee, really"
    assert pretrained.review_lm_text("one two", 40) == "one two"


def test_finetune_review_lm_from_the_austen_weights_and_from_scratch(tmp_path, monkeypatch):
    learn, info = pretrained.pretrain_austen_lm(_tiny_paragraphs(), **TINY_LM)
    folder = pretrained.save_austen_lm(learn, info, tmp_path / "models")
    texts = [p.lower() for p in _tiny_paragraphs()] * 4
    dls = pretrained.review_lm_loaders(texts)
    monkeypatch.setattr(pretrained.ch05, "AUSTEN_LM_CONFIG", TINY_LM["config"])  # the tiny Austen model's sizes
    tuned, ppl_tuned = pretrained.finetune_review_lm(dls, folder)
    bar = _Bar()
    bar.reset(total=2 * len(dls.train))
    _, ppl_again = pretrained.finetune_review_lm(dls, folder, progress=bar)  # with the bar of a first use
    _, ppl_scratch = pretrained.finetune_review_lm(dls, None)
    assert len(ppl_tuned) == 3 and ppl_tuned == ppl_again  # seeded: the same run twice, bar or not
    assert bar.n == bar.total  # one frozen and one unfrozen epoch
    assert ppl_tuned[-1] < ppl_tuned[0] and ppl_scratch[-1] < ppl_scratch[0]
    assert ppl_tuned[0] < ppl_scratch[0]  # the Austen start already knows these words
    assert tuned.model[0].encoder.weight.shape[0] == len(dls.vocab)


def test_registry_has_the_review_lm_cached_step_with_both_inputs_declared():
    entry = DATASETS["review_lm"]
    assert entry.files == pretrained.REVIEW_LM_FILES and entry.chapters == ("05_nlp",)
    assert [s.kind for s in entry.sources] == ["course"] and entry.inputs == ("austen_lm", "reviews")
    assert (entry.build, entry.load) == ("course_utils.pretrained.ch05:build_review_lm", "course_utils.pretrained.ch05:review_lm")
    order = build_order()  # from the declared graph: every input before what is made from it
    assert order.index("austen") < order.index("austen_lm") < order.index("review_lm")
    assert order.index("reviews") < order.index("review_lm")


def test_the_cached_review_lm_when_course_data_prepared_it():
    from course_utils.data.prepare import status

    if status("review_lm")[0] != "ready":
        pytest.skip("review_lm is not prepared (run `course data`)")
    folder, info = pretrained.review_lm()
    assert {p.name for p in folder.glob("review_*")} >= {"review_lm.pth", "review_lm.pkl", "review_encoder.pth", "review_lm.json"}
    assert info["texts"] == 4000 and info["vocab_size"] == 3008
    assert info["perplexity_pretrained"][-1] <= 0.7 * info["perplexity_scratch"][-1]


# ------------------------------------------------------------------------------------------------
# Trained on first use (on Colab, or before `course data`): a progress bar that changes nothing
# ------------------------------------------------------------------------------------------------


class _Bar:
    """Stands in for the tqdm bar of data.prepare.training_bar: records reset(total) and update(n)."""

    def __init__(self):
        self.total, self.n = None, 0

    def reset(self, total=None):
        self.total, self.n = total, 0

    def update(self, n=1):
        self.n += n


def test_the_training_steps_advance_their_bar_to_the_end_and_train_the_same_weights():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(10).repeat(20)
    x = (torch.rand(200, 28, 28, generator=g) * 60).to(torch.uint8)
    bar = _Bar()
    m1, _ = pretrained.pretrain(x, y, w=4, epochs=2, per_class=10, batch_size=16, progress=bar)
    m2, _ = pretrained.pretrain(x, y, w=4, epochs=2, per_class=10, batch_size=16)
    assert bar.total == 2 * 5 and bar.n == bar.total  # 80 images in batches of 16, twice
    assert all(torch.equal(p, q) for p, q in zip(m1.state_dict().values(), m2.state_dict().values()))

    bar = _Bar()
    learn1, info1 = pretrained.pretrain_austen_lm(_tiny_paragraphs(), progress=bar, **TINY_LM)
    learn2, info2 = pretrained.pretrain_austen_lm(_tiny_paragraphs(), **TINY_LM)
    assert bar.total == TINY_LM["epochs"] * len(learn1.dls.train) and bar.n == bar.total > 0
    sd1, sd2 = learn1.model.state_dict(), learn2.model.state_dict()
    assert info1 == info2 and all(torch.equal(sd1[k], sd2[k]) for k in sd1)


# ------------------------------------------------------------------------------------------------
# 09_deploy: the zoo of served models
# ------------------------------------------------------------------------------------------------


def _striped_images(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(10).repeat(n // 10)
    x = torch.rand(n, 28, 28, generator=g) * 0.1
    x += (y * 0.09)[:, None, None]  # a class-dependent brightness
    return x.clamp(0, 1), y


@pytest.mark.parametrize("arch, config, n_params", [("mlp", {"sizes": [784, 512, 256, 10]}, 535_818),
                                                     ("tiny_resnet", {"w": 16, "n_in": 1, "n_out": 10}, 77_754)])
def test_build_model_rebuilds_each_architecture_from_its_plain_config(arch, config, n_params):
    model = pretrained.build_model(arch, config)
    assert sum(p.numel() for p in model.parameters()) == n_params
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    with pytest.raises(ValueError, match="unknown architecture"):
        pretrained.build_model("resnet50", {})


def test_preprocess_adds_the_channel_and_applies_the_stored_statistics():
    images = torch.full((2, 28, 28), 0.5)
    x = preprocess(images, {"mean": 0.25, "std": 0.5})
    assert x.shape == (2, 1, 28, 28) and torch.allclose(x, torch.full_like(x, 0.5))
    assert torch.equal(preprocess(images[:, None], {"mean": 0.25, "std": 0.5}), x)


def test_a_zoo_model_trains_deterministically_without_touching_the_global_generator(monkeypatch):
    monkeypatch.setitem(pretrained.ch09._RECIPES, "tiny.pt", ("mlp", {"sizes": [784, 32, 10]}, 20, 1e-2))
    x, y = _striped_images()
    state = torch.random.get_rng_state()
    m1, meta1 = pretrained.train_fashion_model("tiny.pt", x, y, seed=3)
    m2, meta2 = pretrained.train_fashion_model("tiny.pt", x, y, seed=3)
    m3, _ = pretrained.train_fashion_model("tiny.pt", x, y, seed=4)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert meta1 == meta2 and meta1["mean"] == round(x.mean().item(), 6) and meta1["seed"] == 3
    assert all(torch.equal(p, q) for p, q in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert not torch.equal(m1.state_dict()["1.weight"], m3.state_dict()["1.weight"])
    accuracy = pretrained.accuracy_on(m1, preprocess(x, meta1), y)
    assert accuracy > 0.5, accuracy  # the brightness is learnable


def test_the_zoo_checkpoints_load_weights_only_and_carry_their_preprocessing():
    cnn, meta = pretrained.fashion_cnn()
    mlp, mlp_meta = pretrained.fashion_mlp()
    assert not cnn.training and not mlp.training
    assert meta["arch"] == "tiny_resnet" and mlp_meta["arch"] == "mlp" and len(meta["classes"]) == 10
    assert 0.28 < meta["mean"] < 0.30 and 0.34 < meta["std"] < 0.37  # Fashion-MNIST's training statistics
    assert DATASETS["fashion_models"].chapters == ("09_deploy",)
    x, y = pretrained.fashion_test(500)
    assert x.dtype == torch.uint8 and x.shape == (500, 28, 28) and len(y) == 500
    assert pretrained.accuracy_on(cnn, preprocess(x.float() / 255, meta), y) > 0.75
