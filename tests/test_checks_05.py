"""Tests of the 05_nlp checks: an independently written correct answer passes, planted wrong answers,
stubs and crashing answers fail (naming what is wrong), and no check ever raises."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from check_helpers import crash, fails, passes, returns_none


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Run the checks with one torch thread, as setup() does in the notebooks (tiny ops crawl when threads fight)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# 05.1 -------------------------------------------------------------------------------------------


def rep(t):
    return re.sub(r"(\S)(\1{2,})", lambda m: f" xxrep {len(m.group(2)) + 1} {m.group(1)} ", t)


def wrep(t):
    pattern = r"(?:\s|^)(\w+)\s+((?:\1\s+)+)\1(\s|\W|$)"
    return re.sub(pattern, lambda m: f" xxwrep {len(m.group(2).split()) + 2} {m.group(1)} {m.group(3)}", t)


def maj(tokens):
    out = []
    for t in tokens:
        if re.fullmatch(r"[A-Z][^A-Z\s]*", t):
            out += ["xxmaj", t.lower()] if len(t) > 1 else [t.lower()]
        else:
            out.append(t)
    return out


def caps(tokens):
    out = []
    for t in tokens:
        if re.fullmatch(r"[A-Z]+[^a-z\s]*", t):
            out += ["xxup", t.lower()] if len(t) > 1 else [t.lower()]
        else:
            out.append(t)
    return out


def test_05_1():
    passes("05.1", rep, wrep, maj, caps)
    line = fails("05.1", lambda t: re.sub(r"(\S)(\1{3,})", lambda m: f" xxrep {len(m.group(2)) + 1} {m.group(1)} ", t),
                 wrep, maj, caps, mentions="replace_rep")  # 4+ instead of 3+
    assert "sooooo" in line or "hmmmm" in line or "Ahhh" in line
    fails("05.1", lambda t: re.sub(r"(\w)(\1{2,})", lambda m: f" xxrep {len(m.group(2)) + 1} {m.group(1)} ", t),
          wrep, maj, caps, mentions="replace_rep")  # misses "!!!!" and ":))))"
    fails("05.1", rep, lambda t: re.sub(r"(?i)(?:\s|^)(\w+)\s+((?:\1\s+)+)\1(\s|\W|$)",
                                        lambda m: f" xxwrep {len(m.group(2).split()) + 2} {m.group(1)} {m.group(3)}", t),
          maj, caps, mentions="replace_wrep")  # case-insensitive: "NO no no no NO!"
    fails("05.1", rep, wrep, lambda toks: [w for t in toks for w in (["xxmaj", t.lower()] if t[:1].isupper() else [t])],
          caps, mentions="replace_maj")  # also fires on all caps and one-letter words
    fails("05.1", rep, wrep, maj, lambda toks: [w for t in toks for w in (["xxup", t.lower()] if t.isupper() else [t])],
          mentions="replace_all_caps")  # one-letter tokens get xxup too ("A", "I")
    fails("05.1", rep, wrep, maj, lambda toks: " ".join(caps(toks)), mentions="list")
    fails("05.1", rep, wrep, maj, crash, mentions="raised")
    fails("05.1", returns_none, wrep, maj, caps, mentions="None")
    fails("05.1", ..., ..., ..., ..., mentions="not answered")


# 05.2 / 05.3 -------------------------------------------------------------------------------------


def lm_batches(nums, bs, seq_len):
    n = (len(nums) - 1) // bs
    x = nums[: n * bs].view(bs, n)
    y = nums[1: n * bs + 1].view(bs, n)
    return [(x[:, i:i + seq_len], y[:, i:i + seq_len]) for i in range(0, n, seq_len)]


def lm_off_by_one(nums, bs, seq_len):  # uses all tokens for x: the last target would run past the stream
    n = len(nums) // bs
    x = nums[: n * bs].view(bs, n)
    y = torch.cat([nums, nums[-1:]])[1: n * bs + 1].view(bs, n)
    return [(x[:, i:i + seq_len], y[:, i:i + seq_len]) for i in range(0, n, seq_len)]


def lm_drops_short(nums, bs, seq_len):
    return [b for b in lm_batches(nums, bs, seq_len) if b[0].shape[1] == seq_len]


def lm_row_major(nums, bs, seq_len):  # consecutive windows go to consecutive rows (no sub-streams)
    n = (len(nums) - 1) // bs
    windows = [(nums[i:i + seq_len], nums[i + 1:i + seq_len + 1]) for i in range(0, n * bs - seq_len + 1, seq_len)]
    return [(torch.stack([w[0] for w in windows[k:k + bs]]), torch.stack([w[1] for w in windows[k:k + bs]]))
            for k in range(0, len(windows) - bs + 1, bs)]


def test_05_2():
    x = torch.arange(6)[:, None] * 14 + torch.arange(5)
    passes("05.2", x, x + 1, 3)
    passes("05.2", x.numpy(), (x + 1).tolist(), np.int64(3))
    fails("05.2", torch.arange(6)[:, None] * 15 + torch.arange(5), torch.arange(6)[:, None] * 15 + torch.arange(5) + 1, 3,
          mentions="14 tokens long")
    fails("05.2", x, x, 3, mentions="first_y")
    fails("05.2", x, x + 1, 2, mentions="n_batches")
    fails("05.2", x.T, x.T + 1, 3, mentions="shape")
    fails("05.2", x, x + 1, 3.0, mentions="int")
    fails("05.2", ..., ..., ..., mentions="not answered")


def test_05_3():
    passes("05.3", lm_batches)
    passes("05.3", lambda nums, bs, sl: [(x.numpy(), y.tolist()) for x, y in lm_batches(nums, bs, sl)])
    fails("05.3", lm_off_by_one, mentions="LMDataLoader")
    fails("05.3", lm_drops_short, mentions="batches")
    fails("05.3", lm_row_major, mentions="lm_batches")
    fails("05.3", lambda nums, bs, sl: [(x, x) for x, _ in lm_batches(nums, bs, sl)], mentions="y differs")
    fails("05.3", crash, mentions="raised")
    fails("05.3", returns_none, mentions="None")
    fails("05.3", ..., mentions="not answered")


# 05.4 -------------------------------------------------------------------------------------------


def rnn_forward(x, h0, W, b, V, c):
    h, hs = h0, []
    for t in range(len(x)):
        h = np.tanh(np.concatenate([x[t], h], 1) @ W + b)
        hs.append(h)
    hs = np.stack(hs)
    return hs, hs @ V + c


def make_rnn_backward(sum_steps=True, tanh_grad=True, through_time=True):
    def rnn_backward(x, h0, W, b, V, c):
        hs, _ = rnn_forward(x, h0, W, b, V, c)
        T, B, n_in = x.shape
        dW, db = np.zeros_like(W), np.zeros_like(b)
        dV, dc = hs.sum((0, 1))[:, None] * np.ones((1, V.shape[1])), np.full_like(c, T * B)
        dh = np.zeros_like(h0)
        for t in reversed(range(T)):
            dh = dh + np.ones((B, V.shape[1])) @ V.T
            h_prev = hs[t - 1] if t else h0
            da = dh * (1 - hs[t] ** 2) if tanh_grad else dh
            step_dW = np.concatenate([x[t], h_prev], 1).T @ da
            if sum_steps:
                dW, db = dW + step_dW, db + da.sum(0)
            elif t == T - 1:
                dW, db = step_dW, da.sum(0)
            dh = da @ W[n_in:].T if through_time else np.zeros_like(dh)
        return dW, db, dV, dc, dh
    return rnn_backward


def test_05_4():
    passes("05.4", rnn_forward, make_rnn_backward())
    fails("05.4", rnn_forward, make_rnn_backward(sum_steps=False), mentions="dW")
    fails("05.4", rnn_forward, make_rnn_backward(tanh_grad=False), mentions="dW")
    fails("05.4", rnn_forward, make_rnn_backward(through_time=False), mentions="dW")
    fails("05.4", lambda x, h0, W, b, V, c: (rnn_forward(x, h0, W, b, V, c)[0], rnn_forward(x, h0, W, b, V, c)[0]),
          make_rnn_backward(), mentions="shape")
    fails("05.4", lambda x, h0, W, b, V, c: rnn_forward(x, np.zeros_like(h0), W, b, V, c), make_rnn_backward(), mentions="h0")
    fails("05.4", rnn_forward, lambda *a: make_rnn_backward()(*a)[:4], mentions="5 gradients")
    fails("05.4", crash, make_rnn_backward(), mentions="raised")
    fails("05.4", rnn_forward, returns_none, mentions="None")
    fails("05.4", ..., ..., mentions="not answered")


# 05.5 -------------------------------------------------------------------------------------------


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh, order="ifgo"):
    gates = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh
    parts = dict(zip(order, np.split(gates, 4, axis=1)))
    i, f, g, o = sigmoid(parts["i"]), sigmoid(parts["f"]), np.tanh(parts["g"]), sigmoid(parts["o"])
    c_new = f * c + i * g
    return o * np.tanh(c_new), c_new


def gru_cell(x, h, W_ih, W_hh, b_ih, b_hh, form="torch"):
    xr, xz, xn = np.split(x @ W_ih.T + b_ih, 3, axis=1)
    hr, hz, hn = np.split(h @ W_hh.T + b_hh, 3, axis=1)
    r, z = sigmoid(xr + hr), sigmoid(xz + hz)
    if form == "cho":
        nh = h.shape[1]
        n = np.tanh(xn + (r * h) @ W_hh[2 * nh:].T + b_hh[2 * nh:])
    else:
        n = np.tanh(xn + r * hn)
    return z * n + (1 - z) * h if form == "swapped" else (1 - z) * n + z * h


def test_05_5():
    passes("05.5", lstm_cell, gru_cell)
    fails("05.5", lstm_cell, lambda *a: gru_cell(*a, form="cho"), mentions="reset gate")
    fails("05.5", lstm_cell, lambda *a: gru_cell(*a, form="swapped"), mentions="gru_cell")
    fails("05.5", lambda *a: lstm_cell(*a, order="ifog"), gru_cell, mentions="lstm_cell")
    fails("05.5", lambda *a: lstm_cell(*a)[0], gru_cell, mentions="(h_new, c_new)")
    fails("05.5", lambda *a: lstm_cell(*a)[::-1], gru_cell, mentions="lstm_cell")
    fails("05.5", lstm_cell, crash, mentions="raised")
    fails("05.5", returns_none, gru_cell, mentions="None")
    fails("05.5", ..., ..., mentions="not answered")


# 05.6 -------------------------------------------------------------------------------------------


def group_chunks(ds, bs):
    m = len(ds) // bs
    return [ds[i + m * j] for i in range(m) for j in range(bs)]


def test_05_6():
    passes("05.6", group_chunks)
    passes("05.6", lambda ds, bs: tuple(np.array(ds[: bs * (len(ds) // bs)], dtype=object).reshape(bs, -1).T.flatten()))
    fails("05.6", lambda ds, bs: list(ds[: bs * (len(ds) // bs)]), mentions="row")
    fails("05.6", lambda ds, bs: group_chunks(ds, bs) + list(ds[bs * (len(ds) // bs):]), mentions="len(ds) % bs")
    fails("05.6", lambda ds, bs: [ds[i * bs + j] for i in range(len(ds) // bs) for j in range(bs)], mentions="row")
    fails("05.6", crash, mentions="raised")
    fails("05.6", returns_none, mentions="None")
    fails("05.6", ..., mentions="not answered")


# 05.7 -------------------------------------------------------------------------------------------


class Dropout(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training:
            return x
        mask = x.new_empty(x.shape).bernoulli_(1 - self.p)
        return x * mask.div_(1 - self.p)


class DropoutNotInverted(Dropout):  # Weidman's form: no rescaling in training
    def forward(self, x):
        return x * x.new_empty(x.shape).bernoulli_(1 - self.p) if self.training else x


class DropoutKeepP(Dropout):
    def forward(self, x):
        return x * x.new_empty(x.shape).bernoulli_(self.p) / (1 - self.p) if self.training else x


class DropoutAlways(Dropout):
    def forward(self, x):
        return x * x.new_empty(x.shape).bernoulli_(1 - self.p) / (1 - self.p)


class DropoutInPlace(Dropout):
    def forward(self, x):
        return x.mul_(x.new_empty(x.shape).bernoulli_(1 - self.p)).div_(1 - self.p) if self.training else x


class DropoutBareP(nn.Module):  # the book's erratum: a bare `p`
    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        mask = x.new_empty(x.shape).bernoulli_(eval("1 - p"))  # NameError, as the book's `p` for `self.p`
        return x * mask


def test_05_7():
    passes("05.7", Dropout)
    passes("05.7", nn.Dropout)
    fails("05.7", DropoutNotInverted, mentions="scaled")
    fails("05.7", DropoutKeepP, mentions="bernoulli_(1 - p)")
    fails("05.7", DropoutAlways, mentions="eval mode")
    fails("05.7", DropoutInPlace, mentions="in place")
    fails("05.7", DropoutBareP, mentions="NameError")
    fails("05.7", nn.Identity, mentions="zeroed nothing")
    fails("05.7", crash, mentions="raised")
    fails("05.7", ..., mentions="not answered")


# 05.8 -------------------------------------------------------------------------------------------


def ar_tar(raw, dropped, alpha, beta):
    return alpha * dropped.pow(2).mean() + beta * raw.diff(dim=1).pow(2).mean()


def test_05_8():
    passes("05.8", ar_tar)
    fails("05.8", lambda raw, dropped, a, b: a * raw.pow(2).mean() + b * dropped.diff(dim=1).pow(2).mean(), mentions="swapped")
    fails("05.8", lambda raw, dropped, a, b: a * dropped.pow(2).mean() + b * raw.diff(dim=0).pow(2).mean(), mentions="time axis")
    fails("05.8", lambda raw, dropped, a, b: a * dropped.pow(2).sum() + b * raw.diff(dim=1).pow(2).sum(), mentions="RNNRegularizer")
    fails("05.8", lambda raw, dropped, a, b: float(ar_tar(raw, dropped, a, b)), mentions="tensor")
    fails("05.8", lambda raw, dropped, a, b: ar_tar(raw.detach(), dropped.detach(), a, b), mentions="differentiable")
    fails("05.8", crash, mentions="raised")
    fails("05.8", returns_none, mentions="None")
    fails("05.8", ..., mentions="not answered")


# 05.9 -------------------------------------------------------------------------------------------


class TwoWords(nn.Module):
    def __init__(self, vocab_sz=30, n_hidden=64):
        super().__init__()
        self.i_h = nn.Embedding(vocab_sz, n_hidden)
        self.h_h = nn.Linear(n_hidden, n_hidden)
        self.h_o = nn.Linear(n_hidden, vocab_sz)

    def forward(self, x):
        h = F.relu(self.h_h(self.i_h(x[:, 0])))
        h = F.relu(self.h_h(h + self.i_h(x[:, 1])))
        return self.h_o(h)


class LastWordOnly(TwoWords):
    def forward(self, x):
        return self.h_o(F.relu(self.h_h(self.i_h(x[:, 1]))))


class AllSteps(TwoWords):  # returns an output per input word
    def forward(self, x):
        return self.h_o(F.relu(self.h_h(self.i_h(x))))


def test_05_9():
    passes("05.9", TwoWords)
    passes("05.9", lambda: nn.Sequential(nn.Embedding(30, 32), nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 30)))
    fails("05.9", LastWordOnly, mentions="baseline")
    fails("05.9", AllSteps, mentions="(5, 30)")
    fails("05.9", lambda: TwoWords(n_hidden=4096), mentions="1,000,000")
    fails("05.9", lambda: 3, mentions="nn.Module")
    fails("05.9", crash, mentions="raised")
    fails("05.9", returns_none, mentions="None")
    fails("05.9", ..., mentions="not answered")


# 05.10 ------------------------------------------------------------------------------------------


class GRUCellScratch(nn.Module):
    def __init__(self, ni, nh, cho=False):
        super().__init__()
        self.ih, self.hh, self.cho = nn.Linear(ni, 3 * nh), nn.Linear(nh, 3 * nh), cho

    def forward(self, x, h):
        xr, xz, xn = self.ih(x).chunk(3, 1)
        hr, hz, hn = self.hh(h).chunk(3, 1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        if self.cho:
            w, b = self.hh.weight.chunk(3, 0)[2], self.hh.bias.chunk(3, 0)[2]
            hn = F.linear(r * h, w, b)
            return (1 - z) * torch.tanh(xn + hn) + z * h
        return (1 - z) * torch.tanh(xn + r * hn) + z * h


class ChoCell(GRUCellScratch):
    def __init__(self, ni, nh):
        super().__init__(ni, nh, cho=True)


class LMModelGRU(nn.Module):
    cell_cls = GRUCellScratch
    detach = True
    keep = True

    def __init__(self, vocab_sz, n_hidden):
        super().__init__()
        self.i_h = nn.Embedding(vocab_sz, n_hidden)
        self.cell = self.cell_cls(n_hidden, n_hidden)
        self.h_o = nn.Linear(n_hidden, vocab_sz)
        self.h = 0

    def forward(self, x):
        h = self.h + torch.zeros(x.shape[0], self.h_o.in_features) if self.keep else torch.zeros(x.shape[0], self.h_o.in_features)
        outs = []
        for i in range(x.shape[1]):
            h = self.cell(self.i_h(x[:, i]), h)
            outs.append(self.h_o(h))
        self.h = h.detach() if self.detach else h
        return torch.stack(outs, 1)

    def reset(self):
        self.h = 0


class LMNoDetach(LMModelGRU):
    detach = False


class LMNoKeep(LMModelGRU):
    keep = False


class LMBadReset(LMModelGRU):
    def reset(self):
        pass


def test_05_10():
    passes("05.10", GRUCellScratch, LMModelGRU)
    fails("05.10", ChoCell, LMModelGRU, mentions="reset gate")
    fails("05.10", GRUCellScratch, LMNoDetach, mentions="detach")
    fails("05.10", GRUCellScratch, LMNoKeep, mentions="batch 2")
    fails("05.10", GRUCellScratch, LMBadReset, mentions="reset()")
    fails("05.10", lambda ni, nh: nn.GRUCell(ni, nh), LMModelGRU, mentions="`ih`")
    fails("05.10", crash, LMModelGRU, mentions="raised")
    fails("05.10", GRUCellScratch, returns_none, mentions="None")
    fails("05.10", ..., ..., mentions="not answered")


# 05.11 ------------------------------------------------------------------------------------------


def sample_next(logits, temperature, generator):
    if temperature == 0:
        return int(logits.argmax())
    return int(torch.multinomial(F.softmax(logits / temperature, -1), 1, generator=generator))


def test_05_11():
    passes("05.11", sample_next)
    passes("05.11", lambda l, t, g: l.argmax() if t == 0 else (l / t).softmax(0).multinomial(1, generator=g))
    fails("05.11", lambda l, t, g: int(torch.multinomial(F.softmax(l * max(t, 1e-9), -1), 1, generator=g)) if t else int(l.argmax()),
          mentions="temperature")
    fails("05.11", lambda l, t, g: int(torch.multinomial(F.softmax(l / t, -1), 1, generator=g)), mentions="argmax")
    fails("05.11", lambda l, t, g: int(torch.multinomial(F.softmax(l / t, -1), 1)) if t else int(l.argmax()), mentions="generator")
    fails("05.11", lambda l, t, g: int(l.argmax()), mentions="temperature")
    fails("05.11", lambda l, t, g: float(sample_next(l, t, g)), mentions="int")
    fails("05.11", crash, mentions="raised")
    fails("05.11", returns_none, mentions="None")
    fails("05.11", ..., mentions="not answered")


# 05.12 ------------------------------------------------------------------------------------------


def bow_matrix(token_lists, vocab):
    index = {w: j for j, w in enumerate(vocab)}
    X = np.zeros((len(token_lists), len(vocab)), dtype=np.float32)
    for i, doc in enumerate(token_lists):
        for w in doc:
            if w in index:
                X[i, index[w]] += 1
    return X


def fit_logreg(X, y):
    model = nn.Linear(X.shape[1], 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(50):
        loss = F.cross_entropy(model(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def fit_untrained(X, y):
    return nn.Linear(X.shape[1], 2)


def test_05_12():
    passes("05.12", bow_matrix, fit_logreg)
    fails("05.12", lambda docs, vocab: (bow_matrix(docs, vocab) > 0).astype(np.float32), fit_logreg, mentions="CountVectorizer")
    fails("05.12", lambda docs, vocab: bow_matrix(docs, sorted(vocab)), fit_logreg, mentions="CountVectorizer")
    fails("05.12", lambda docs, vocab: bow_matrix(docs, vocab).T, fit_logreg, mentions="shape")
    fails("05.12", bow_matrix, fit_untrained, mentions="0.74")
    fails("05.12", bow_matrix, lambda X, y: nn.Linear(X.shape[1], 1), mentions="logits")
    fails("05.12", bow_matrix, crash, mentions="raised")
    fails("05.12", returns_none, fit_logreg, mentions="None")
    fails("05.12", ..., ..., mentions="not answered")


# 05.13 ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report():
    from course_utils.data import reviews

    y = (reviews()[1].score == "great").to_numpy().astype(np.int64)
    rng = np.random.default_rng(0)
    rates = {"bow": (0.70, 0.76, 0.80), "scratch": (0.66, 0.72, 0.77), "ulmfit": (0.65, 0.70, 0.75)}
    preds, accs = {}, {}
    for method, accuracies in rates.items():
        for n, target in zip((250, 1000, 4000), accuracies):
            for seed in (0, 1):
                wrong = rng.random(len(y)) > target
                p = np.where(wrong, 1 - y, y)
                preds[(method, n, seed)] = p
                accs[(method, n, seed)] = float((p == y).mean())
    return {"predictions": preds, "accuracy": accs, "winner": {250: "bow", 1000: "bow", 4000: "bow"}}


def test_05_13(report):
    passes("05.13", report)
    passes("05.13", {**report, "predictions": {k: torch.tensor(v) for k, v in report["predictions"].items()},
                     "winner": {str(k): v for k, v in report["winner"].items()}})
    fails("05.13", {**report, "winner": {250: "bow", 1000: "ulmfit", 4000: "bow"}}, mentions="winner[1000]")
    fails("05.13", {**report, "accuracy": {**report["accuracy"], ("scratch", 250, 1): 0.9}}, mentions="accuracy[('scratch', 250, 1)]")
    one_seed = {k: v for k, v in report["predictions"].items() if k != ("ulmfit", 4000, 1)}
    fails("05.13", {**report, "predictions": one_seed,
                    "accuracy": {k: v for k, v in report["accuracy"].items() if k in one_seed}}, mentions="2 seeds")
    flipped = {k: (1 - v if k[0] == "bow" else v) for k, v in report["predictions"].items()}
    fails("05.13", {**report, "predictions": flipped}, mentions="accuracy")
    probs = {k: v * 0.9 for k, v in report["predictions"].items()}
    fails("05.13", {**report, "predictions": probs}, mentions="0/1")
    fails("05.13", {**report, "predictions": {("lstm", 250, 0): report["predictions"][("bow", 250, 0)]}}, mentions="unknown method")
    fails("05.13", {"predictions": {}, "accuracy": {}}, mentions="'winner'")
    fails("05.13", ..., mentions="not answered")
    fails("05.13", None, mentions="not answered")


# 05.14 ------------------------------------------------------------------------------------------


class LMModel3Fixed(nn.Module):
    def __init__(self, vocab_sz, n_hidden):
        super().__init__()
        self.i_h = nn.Embedding(vocab_sz, n_hidden)
        self.h_h = nn.Linear(n_hidden, n_hidden)
        self.h_o = nn.Linear(n_hidden, vocab_sz)
        self.h = 0

    def forward(self, x):
        for i in range(3):
            self.h = self.h + self.i_h(x[:, i])
            self.h = F.relu(self.h_h(self.h))
        out = self.h_o(self.h)
        self.h = self.h.detach()
        return out

    def reset(self):
        self.h = 0


class LMModel3Buggy(LMModel3Fixed):
    def forward(self, x):
        for i in range(3):
            self.h = self.h + self.i_h(x[:, i])
            self.h = F.relu(self.h_h(self.h))
        return self.h_o(self.h)


class LMModel3Stateless(LMModel3Fixed):
    def forward(self, x):
        self.reset()
        return super().forward(x)


def torch_loader(ds, bs):
    return torch.utils.data.DataLoader(ds, batch_size=bs, shuffle=False, drop_last=True)


def fastai_loader(ds, bs):
    from fastai.data.load import DataLoader

    return DataLoader(ds, bs=bs, shuffle=False, drop_last=True)


def test_05_14():
    from fastai.data.core import DataLoaders

    passes("05.14", LMModel3Fixed, torch_loader)
    passes("05.14", LMModel3Fixed, fastai_loader)
    fails("05.14", LMModel3Buggy, torch_loader, mentions="detach")
    fails("05.14", LMModel3Fixed, lambda ds, bs: torch.utils.data.DataLoader(ds, batch_size=bs, shuffle=True, drop_last=True),
          mentions="shuffles")
    fails("05.14", LMModel3Fixed, lambda ds, bs: torch.utils.data.DataLoader(ds, batch_size=bs), mentions="drop_last")
    fails("05.14", LMModel3Stateless, torch_loader, mentions="not carried")
    fails("05.14", LMModel3Fixed, lambda ds, bs: ds, mentions="batches")
    fails("05.14", LMModel3Fixed, lambda ds, bs: 3, mentions="DataLoader")
    fails("05.14", LMModel3Fixed, lambda ds, bs: DataLoaders(fastai_loader(ds, bs), fastai_loader(ds, bs)),
          mentions="DataLoaders pair")
    fails("05.14", crash, torch_loader, mentions="raised")
    fails("05.14", LMModel3Fixed, returns_none, mentions="None")
    fails("05.14", ..., ..., mentions="not answered")


def test_checks_leave_global_rngs_alone():
    import random

    states = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    passes("05.14", LMModel3Fixed, fastai_loader)  # fastai's DataLoader draws from `random` when built
    passes("05.3", lm_batches)
    fails("05.7", DropoutKeepP)
    assert random.getstate() == states[0]
    assert (np.random.get_state()[1] == states[1]).all()
    assert torch.equal(torch.get_rng_state(), states[2])
