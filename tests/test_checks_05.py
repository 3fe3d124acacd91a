"""Tests of the 05_nlp checks: other correct answers pass, planted wrong answers, stubs and crashing
answers fail (naming what is wrong), and no check ever raises.

The full notebook under nbval already proves that the chapter's reference solutions pass, so the
correct answers here are deliberately *other* ways to write them (str methods and itertools instead
of fastai's regexes, per-gate weight blocks instead of one split, a GRU instead of an MLP,
LBFGS instead of Adam, ...): a check that accepts only the chapter's spelling fails these tests.
tests/test_checks_independent.py keeps chapter code from being pasted back in.
"""

from __future__ import annotations

import functools
import itertools
import re
import string
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from check_helpers import Planted, crash, fails, passes, planted_test, returns_none


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


# 05.1 -------------------------------------------------------------------------------------------
# fastai's rules are regexes; these answers use no regex at all.

UPPER, LOWER = set(string.ascii_uppercase), set(string.ascii_lowercase)


def is_word_char(ch):
    """What the regex class \\w means for these strings."""
    return ch.isalnum() or ch == "_"


def rep_by_runs(t):
    """Runs of one character, found with itertools.groupby."""
    out = []
    for ch, run in itertools.groupby(t):
        n = len(list(run))
        out.append(f" xxrep {n} {ch} " if n >= 3 and not ch.isspace() else ch * n)
    return "".join(out)


def chunks_with_gaps(t):
    """[(whitespace before, chunk)] for the whitespace-separated chunks of t, by a walk over the characters."""
    pairs, gap, chunk = [], "", ""
    for ch in t:
        if ch.isspace():
            if chunk:
                pairs.append((gap, chunk))
                gap, chunk = "", ""
            gap += ch
        else:
            chunk += ch
    if chunk:
        pairs.append((gap, chunk))
    return pairs


def wrep_by_chunks(t, whole_words=True):
    """Walk the chunks: a pure word repeated as whole chunks, the last copy possibly followed by punctuation.

    Like fastai's match, a run consumes one whitespace character before it and the character after
    it, so a run cannot start right after another one that ended on a single space. With
    whole_words=False (a planted mistake) a last copy may run on into letters: "go go goal"."""
    pairs, tokens, i, used_gap = chunks_with_gaps(t), [], 0, False
    while i < len(pairs):
        gap, word = pairs[i]
        can_start = (len(gap) > int(used_gap)) or (i == 0 and gap == "")
        used_gap = False
        j = i + 1
        while j < len(pairs) and pairs[j][1] == word:
            j += 1
        tail = pairs[j][1][len(word):] if j < len(pairs) and pairs[j][1].startswith(word) else ""
        tail_ok = tail != "" and (not is_word_char(tail[0]) or not whole_words)
        count = j - i + int(tail_ok)
        if can_start and word and all(map(is_word_char, word)) and count >= 3:
            tokens += ["xxwrep", str(count), word]
            if tail_ok:
                tokens.append(tail)
                j += 1
            else:
                used_gap = j < len(pairs)  # the run ate the first whitespace character after it
            i = j
        else:
            tokens.append(word)
            i += 1
    return " ".join(tokens)


def lowered(tok, mark):
    """The token lowercased, after `mark` unless it is a single letter."""
    return [mark, tok.lower()] if len(tok) > 1 else [tok.lower()]


def maj_by_sets(tokens):
    return [w for tok in tokens for w in (lowered(tok, "xxmaj") if tok[:1] in UPPER and not UPPER & set(tok[1:]) else [tok])]


def caps_by_sets(tokens):
    return [w for tok in tokens for w in (lowered(tok, "xxup") if tok[:1] in UPPER and not LOWER & set(tok) else [tok])]


def test_05_1():
    passes("05.1", rep_by_runs, wrep_by_chunks, maj_by_sets, caps_by_sets)
    # the same rules with fastai's regexes (the check's reference) as a second spelling
    passes("05.1", lambda t: re.sub(r"(\S)\1\1+", lambda m: f" xxrep {len(m.group(0))} {m.group(1)} ", t),
           wrep_by_chunks, maj_by_sets, caps_by_sets)
    fails("05.1", rep_by_runs, wrep_by_chunks, maj_by_sets, lambda toks: " ".join(caps_by_sets(toks)), mentions="list")
    fails("05.1", rep_by_runs, wrep_by_chunks, maj_by_sets, crash, mentions="raised")
    fails("05.1", returns_none, wrep_by_chunks, maj_by_sets, caps_by_sets, mentions="None")
    fails("05.1", ..., ..., ..., ..., mentions="not answered")


# 05.2 / 05.3 -------------------------------------------------------------------------------------


def lm_batches_by_rows(nums, bs, seq_len):
    """One slice per row (with its one extra token for the last target), windows cut from the rows."""
    per_row = (len(nums) - 1) // bs
    rows = [nums[r * per_row:(r + 1) * per_row + 1] for r in range(bs)]
    out = []
    for start in range(0, per_row, seq_len):
        stop = min(start + seq_len, per_row)
        out.append((torch.stack([row[start:stop] for row in rows]), torch.stack([row[start + 1:stop + 1] for row in rows])))
    return out


def lm_off_by_one(nums, bs, seq_len):  # uses all tokens for x: the last target would run past the stream
    n = len(nums) // bs
    x = nums[: n * bs].view(bs, n)
    y = torch.cat([nums, nums[-1:]])[1: n * bs + 1].view(bs, n)
    return [(x[:, i:i + seq_len], y[:, i:i + seq_len]) for i in range(0, n, seq_len)]


def lm_drops_short(nums, bs, seq_len):
    return [b for b in lm_batches_by_rows(nums, bs, seq_len) if b[0].shape[1] == seq_len]


def lm_row_major(nums, bs, seq_len):  # consecutive windows go to consecutive rows (no sub-streams)
    n = (len(nums) - 1) // bs
    windows = [(nums[i:i + seq_len], nums[i + 1:i + seq_len + 1]) for i in range(0, n * bs - seq_len + 1, seq_len)]
    return [(torch.stack([w[0] for w in windows[k:k + bs]]), torch.stack([w[1] for w in windows[k:k + bs]]))
            for k in range(0, len(windows) - bs + 1, bs)]


def test_05_2():
    x = torch.arange(84).view(6, 14)[:, :5]  # 6 sub-streams of 14 tokens, the first window of each
    passes("05.2", x, x + 1, 3)
    passes("05.2", x.numpy(), [[v + 1 for v in row] for row in x.tolist()], np.int64(3))
    fails("05.2", x, x + 1, 3.0, mentions="int")
    fails("05.2", ..., ..., ..., mentions="not answered")


def test_05_3():
    passes("05.3", lm_batches_by_rows)
    passes("05.3", lambda nums, bs, sl: [(x.numpy(), y.tolist()) for x, y in lm_batches_by_rows(nums, bs, sl)])
    fails("05.3", crash, mentions="raised")
    fails("05.3", returns_none, mentions="None")
    fails("05.3", ..., mentions="not answered")


# 05.4 -------------------------------------------------------------------------------------------


def rnn_forward_split(x, h0, W, b, V, c):
    """The input and recurrent blocks of W used separately; the states written into a preallocated array."""
    n_in = x.shape[2]
    W_x, W_h = W[:n_in], W[n_in:]
    hs = np.empty((len(x),) + h0.shape)
    h = h0
    for t, x_t in enumerate(x):
        h = hs[t] = np.tanh(x_t @ W_x + h @ W_h + b)
    return hs, np.einsum("tbh,ho->tbo", hs, V) + c


def make_bptt(sum_steps=True, tanh_grad=True, through_time=True):
    """BPTT whose loop carries only dh back in time; every weight gradient comes after the loop, in one
    einsum over the stacked pre-activation gradients. Correct with the defaults; switching a flag off
    plants one mistake (only the last step's share, no tanh derivative, no gradient through time)."""
    def rnn_backward(x, h0, W, b, V, c):
        hs, _ = rnn_forward_split(x, h0, W, b, V, c)
        T, B, n_in = x.shape
        das, carry = np.zeros_like(hs), np.zeros_like(h0)
        for t in range(T - 1, -1, -1):
            dh = carry + V.sum(1)  # from step t + 1, plus from this step's own outputs
            das[t] = dh * (1 - hs[t] ** 2) if tanh_grad else dh
            carry = das[t] @ W[n_in:].T if through_time else np.zeros_like(carry)
        h_prev = np.concatenate([h0[None], hs[:-1]])
        steps = slice(None) if sum_steps else slice(T - 1, T)
        dW = np.concatenate([np.einsum("tbi,tbh->ih", x[steps], das[steps]),
                             np.einsum("tbi,tbh->ih", h_prev[steps], das[steps])])
        dV = np.repeat(hs.sum((0, 1))[:, None], V.shape[1], axis=1)
        return dW, das[steps].sum((0, 1)), dV, np.full(V.shape[1], float(T * B)), carry
    return rnn_backward


def test_05_4():
    passes("05.4", rnn_forward_split, make_bptt())
    fails("05.4", lambda *a: (rnn_forward_split(*a)[0], rnn_forward_split(*a)[0]), make_bptt(), mentions="shape")
    fails("05.4", rnn_forward_split, lambda *a: make_bptt()(*a)[:4], mentions="5 gradients")
    fails("05.4", crash, make_bptt(), mentions="raised")
    fails("05.4", rnn_forward_split, returns_none, mentions="None")
    fails("05.4", ..., ..., mentions="not answered")


# 05.5 -------------------------------------------------------------------------------------------


def sigmoid_via_tanh(z):
    return 0.5 * (1 + np.tanh(0.5 * z))  # σ(z) = (1 + tanh(z / 2)) / 2, no exp


def lstm_by_gate(x, h, c, W_ih, W_hh, b_ih, b_hh, order="ifgo"):
    """Each gate from its own row block of the weights (`order` other than "ifgo" plants a mistake)."""
    nh = h.shape[1]
    pre = {name: x @ W_ih[k * nh:(k + 1) * nh].T + h @ W_hh[k * nh:(k + 1) * nh].T + b_ih[k * nh:(k + 1) * nh]
           + b_hh[k * nh:(k + 1) * nh] for k, name in enumerate(order)}
    c_new = sigmoid_via_tanh(pre["f"]) * c + sigmoid_via_tanh(pre["i"]) * np.tanh(pre["g"])
    return sigmoid_via_tanh(pre["o"]) * np.tanh(c_new), c_new


def gru_by_gate(x, h, W_ih, W_hh, b_ih, b_hh, form="torch"):
    """Gate by gate from row blocks; form="cho" (reset before the matmul) and "swapped" (z and 1 - z) are planted."""
    nh = h.shape[1]

    def lin(inp, W, bias, k):
        return inp @ W[k * nh:(k + 1) * nh].T + bias[k * nh:(k + 1) * nh]

    r = sigmoid_via_tanh(lin(x, W_ih, b_ih, 0) + lin(h, W_hh, b_hh, 0))
    z = sigmoid_via_tanh(lin(x, W_ih, b_ih, 1) + lin(h, W_hh, b_hh, 1))
    h_n = lin(r * h, W_hh, b_hh, 2) if form == "cho" else r * lin(h, W_hh, b_hh, 2)
    n = np.tanh(lin(x, W_ih, b_ih, 2) + h_n)
    return h + z * (n - h) if form == "swapped" else n + z * (h - n)


def test_05_5():
    passes("05.5", lstm_by_gate, gru_by_gate)
    fails("05.5", lambda *a: lstm_by_gate(*a)[0], gru_by_gate, mentions="(h_new, c_new)")
    fails("05.5", lstm_by_gate, crash, mentions="raised")
    fails("05.5", returns_none, gru_by_gate, mentions="None")
    fails("05.5", ..., ..., mentions="not answered")


# 05.6 -------------------------------------------------------------------------------------------


def group_chunks_by_streams(ds, bs):
    """Cut the bs streams first, then interleave them with zip."""
    m = len(ds) // bs
    streams = [ds[j * m:(j + 1) * m] for j in range(bs)]
    return [item for batch in zip(*streams) for item in batch]


def test_05_6():
    passes("05.6", group_chunks_by_streams)
    passes("05.6", lambda ds, bs: tuple(np.array(ds[: bs * (len(ds) // bs)], dtype=object).reshape(bs, -1).T.flatten()))
    fails("05.6", crash, mentions="raised")
    fails("05.6", returns_none, mentions="None")
    fails("05.6", ..., mentions="not answered")


# 05.7 -------------------------------------------------------------------------------------------


class DropoutWhere(nn.Module):
    """A uniform draw compared with p, and torch.where: no bernoulli_, no mask tensor kept."""

    def __init__(self, p=0.5):
        super().__init__()
        self.p = p

    def forward(self, x):
        if self.training:
            keep = torch.rand_like(x) >= self.p
            return torch.where(keep, x / (1 - self.p), torch.zeros_like(x))
        return x


class DropoutNotInverted(DropoutWhere):  # Weidman's form: no rescaling in training
    def forward(self, x):
        return x * x.new_empty(x.shape).bernoulli_(1 - self.p) if self.training else x


class DropoutKeepP(DropoutWhere):
    def forward(self, x):
        return x * x.new_empty(x.shape).bernoulli_(self.p) / (1 - self.p) if self.training else x


class DropoutAlways(DropoutWhere):
    def forward(self, x):
        return x * x.new_empty(x.shape).bernoulli_(1 - self.p) / (1 - self.p)


class DropoutInPlace(DropoutWhere):
    def forward(self, x):
        return x.mul_(x.new_empty(x.shape).bernoulli_(1 - self.p)).div_(1 - self.p) if self.training else x


class DropoutCachedMask(DropoutWhere):
    """Draws its mask on the first call in training mode and keeps it (the same elements dropped every batch)."""

    def forward(self, x):
        if not self.training:
            return x
        if getattr(self, "mask", None) is None or self.mask.shape != x.shape:
            self.mask = x.new_empty(x.shape).bernoulli_(1 - self.p) / (1 - self.p)
        return x * self.mask


class DropoutBareP(DropoutWhere):  # the book's erratum: a bare `p`
    def forward(self, x):
        mask = x.new_empty(x.shape).bernoulli_(eval("1 - p"))  # NameError, as the book's `p` for `self.p`
        return x * mask


def test_05_7():
    passes("05.7", DropoutWhere)
    passes("05.7", nn.Dropout)
    fails("05.7", DropoutBareP, mentions="NameError")
    fails("05.7", DropoutCachedMask, mentions="same elements")
    fails("05.7", nn.Identity, mentions="zeroed nothing")
    fails("05.7", crash, mentions="raised")
    fails("05.7", ..., mentions="not answered")


# 05.8 -------------------------------------------------------------------------------------------


def ar_tar_mse(raw, dropped, alpha, beta):
    """Both terms as F.mse_loss: AR against zeros, TAR between the shifted sequences."""
    return alpha * F.mse_loss(dropped, torch.zeros_like(dropped)) + beta * F.mse_loss(raw[:, 1:], raw[:, :-1])


def test_05_8():
    passes("05.8", ar_tar_mse)
    passes("05.8", lambda raw, dropped, a, b: a * dropped.square().mean() + b * torch.diff(raw, dim=1).square().mean())
    fails("05.8", lambda raw, dropped, a, b: float(ar_tar_mse(raw, dropped, a, b)), mentions="tensor")
    fails("05.8", crash, mentions="raised")
    fails("05.8", returns_none, mentions="None")
    fails("05.8", ..., mentions="not answered")


# 05.9 -------------------------------------------------------------------------------------------


class PairGRU(nn.Module):
    """The two words through nn.GRU, the last state to the output layer (not the chapter's shared-layer MLP)."""

    def __init__(self, last_word_only=False):
        super().__init__()
        self.emb, self.rnn, self.out = nn.Embedding(30, 32), nn.GRU(32, 64, batch_first=True), nn.Linear(64, 30)
        self.last_word_only = last_word_only

    def forward(self, x):
        states, _ = self.rnn(self.emb(x[:, 1:] if self.last_word_only else x))
        return self.out(states[:, -1])


class PairGRUAllSteps(PairGRU):  # returns an output per input word
    def forward(self, x):
        return self.out(self.rnn(self.emb(x))[0])


def test_05_9():
    passes("05.9", PairGRU)
    passes("05.9", lambda: nn.Sequential(nn.Embedding(30, 32), nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 30)))
    fails("05.9", lambda: PairGRU(last_word_only=True), mentions="baseline")
    fails("05.9", PairGRUAllSteps, mentions="(5, 30)")
    fails("05.9", lambda: nn.Sequential(nn.Embedding(30, 64), nn.Flatten(), nn.Linear(128, 8192), nn.ReLU(), nn.Linear(8192, 30)),
          mentions="1,000,000")
    fails("05.9", lambda: 3, mentions="nn.Module")
    fails("05.9", crash, mentions="raised")
    fails("05.9", returns_none, mentions="None")
    fails("05.9", ..., mentions="not answered")


# 05.10 ------------------------------------------------------------------------------------------


class GRUCellLerp(nn.Module):
    """nn.GRU's layout (ih, hh); r and z from one sigmoid, the update as torch.lerp(n, h, z) = (1 - z) n + z h.
    cho=True plants Cho et al.'s form (the reset gate applied before the hh matmul)."""

    def __init__(self, ni, nh, cho=False):
        super().__init__()
        self.ih, self.hh, self.cho = nn.Linear(ni, 3 * nh), nn.Linear(nh, 3 * nh), cho

    def forward(self, x, h):
        nh = h.shape[1]
        gi, gh = self.ih(x), self.hh(h)
        r, z = torch.sigmoid(gi[:, :2 * nh] + gh[:, :2 * nh]).split(nh, 1)
        h_n = F.linear(r * h, self.hh.weight[2 * nh:], self.hh.bias[2 * nh:]) if self.cho else r * gh[:, 2 * nh:]
        return torch.lerp(torch.tanh(gi[:, 2 * nh:] + h_n), h, z)


class ChoCell(GRUCellLerp):
    def __init__(self, ni, nh):
        super().__init__(ni, nh, cho=True)


class LMGRUStacked(nn.Module):
    """Embeds the whole batch at once, walks the unbound time steps, applies h_o once to the stacked states.
    The class flags plant the mistakes of the subclasses below."""

    detach, keep = True, True

    def __init__(self, vocab_sz, n_hidden):
        super().__init__()
        self.i_h, self.h_o = nn.Embedding(vocab_sz, n_hidden), nn.Linear(n_hidden, vocab_sz)
        self.cell = GRUCellLerp(n_hidden, n_hidden)
        self.h = 0

    def forward(self, x):
        h = self.h if self.keep and torch.is_tensor(self.h) else x.new_zeros(len(x), self.h_o.in_features, dtype=torch.float)
        states = []
        for emb in self.i_h(x).unbind(1):
            h = self.cell(emb, h)
            states.append(h)
        self.h = h.detach() if self.detach else h
        return self.h_o(torch.stack(states, 1))

    def reset(self):
        self.h = 0


class LMNoDetach(LMGRUStacked):
    detach = False


class LMNoKeep(LMGRUStacked):
    keep = False


class LMBadReset(LMGRUStacked):
    def reset(self):
        pass


def test_05_10():
    passes("05.10", GRUCellLerp, LMGRUStacked)
    fails("05.10", lambda ni, nh: nn.GRUCell(ni, nh), LMGRUStacked, mentions="`ih`")
    fails("05.10", crash, LMGRUStacked, mentions="raised")
    fails("05.10", GRUCellLerp, returns_none, mentions="None")
    fails("05.10", ..., ..., mentions="not answered")


# 05.11 ------------------------------------------------------------------------------------------


def sample_with_methods(logits, temperature, generator):
    """Tensor methods throughout: max(...).indices, .softmax, .multinomial, .item()."""
    if not temperature:
        return logits.max(0).indices.item()
    return (logits / temperature).softmax(0).multinomial(1, generator=generator).item()


def test_05_11():
    passes("05.11", sample_with_methods)
    passes("05.11", lambda l, t, g: l.argmax() if t == 0 else torch.multinomial(F.softmax(l / t, -1), 1, generator=g))
    fails("05.11", lambda l, t, g: float(sample_with_methods(l, t, g)), mentions="int")
    fails("05.11", crash, mentions="raised")
    fails("05.11", returns_none, mentions="None")
    fails("05.11", ..., mentions="not answered")


# 05.12 ------------------------------------------------------------------------------------------


def bow_by_counter(token_lists, vocab):
    """collections.Counter per document, read off in vocab order."""
    counts = [[Counter(doc)[w] for w in vocab] for doc in token_lists]
    return np.array(counts, dtype=np.float32).reshape(len(token_lists), len(vocab))


class TwoLogits(nn.Module):
    """A binary logistic regression w·x + b shown as the two logits (0, w·x + b): logit 1 is "great"."""

    def __init__(self, n_words):
        super().__init__()
        self.w, self.b = nn.Parameter(torch.zeros(n_words)), nn.Parameter(torch.zeros(()))

    def forward(self, X):
        z = X @ self.w + self.b
        return torch.stack([torch.zeros_like(z), z], 1)


def fit_lbfgs(X, y):
    """Binary cross-entropy with a little L2, minimized by L-BFGS (not the chapter's Adam on a 2-way nn.Linear)."""
    model = TwoLogits(X.shape[1])
    opt = torch.optim.LBFGS(model.parameters(), max_iter=60, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(model(X)[:, 1], y.float()) + 1e-3 * model.w.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return model


def fit_untrained(X, y):
    return nn.Linear(X.shape[1], 2)


def test_05_12():
    passes("05.12", bow_by_counter, fit_lbfgs)
    passes("05.12", lambda docs, vocab: torch.from_numpy(bow_by_counter(docs, vocab)).double(), fit_lbfgs)  # a tensor is fine
    fails("05.12", lambda docs, vocab: bow_by_counter(docs, vocab).T, fit_lbfgs, mentions="shape")
    fails("05.12", bow_by_counter, crash, mentions="raised")
    fails("05.12", returns_none, fit_lbfgs, mentions="None")
    fails("05.12", ..., ..., mentions="not answered")


# 05.13 ------------------------------------------------------------------------------------------


def _winners(accs):
    means = {(m, n): np.mean([a for (m2, n2, _), a in accs.items() if (m2, n2) == (m, n)]) for m, n, _ in accs}
    return {n: max(("bow", "scratch", "ulmfit"), key=lambda m: means[m, n]) for n in (250, 1000, 3600)}


def _with(report, predictions):
    """The report rebuilt around other predictions: accuracies and winners recomputed, so only they are wrong."""
    y = report["labels"]
    accs = {k: float((np.asarray(p) == y).mean()) for k, p in predictions.items()}
    return {"predictions": predictions, "accuracy": accs, "winner": _winners(accs)}


@functools.lru_cache(maxsize=1)
def _real_report():
    """Real predictions from three kinds of trained models (linear models on word counts here, standing in for the
    chapter's bag of words, scratch LSTM and ULMFiT), each on a seeded sample of n labelled reviews; with the labels."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import MultinomialNB

    from course_utils.data import reviews

    train, test = reviews()
    first = lambda text, k: " ".join(re.findall(r"[a-z']+|[!?.]", str(text).lower())[:k])
    y_train = (train.score == "great").to_numpy().astype(np.int64)
    y = (test.score == "great").to_numpy().astype(np.int64)
    makers = {"bow": (16, lambda: LogisticRegression(C=1.0, max_iter=1000)),
              "scratch": (10, lambda: MultinomialNB(alpha=1.0)),
              "ulmfit": (24, lambda: LogisticRegression(C=0.3, max_iter=1000))}
    preds = {}
    for method, (k, model) in makers.items():
        vec = CountVectorizer(binary=True, token_pattern=r"\S+")
        X_all = vec.fit_transform([first(t, k) for t in train.review])
        X_test = vec.transform([first(t, k) for t in test.review])
        for n, seed in itertools.product((250, 1000, 3600), (1, 2)):
            rng = np.random.default_rng(seed)
            # the bag of words samples its rows as the chapter does; the stand-ins for the LSTMs resample with
            # replacement, so that their seeds matter even with all 4,000 labels (as a network's initialization does)
            rows = (np.sort(rng.permutation(len(train))[:n]) if method == "bow" else rng.choice(len(train), n))
            preds[(method, n, seed)] = model().fit(X_all[rows], y_train[rows]).predict(X_test).astype(np.int64)
    out = _with({"labels": y}, preds)
    out["labels"] = y
    return out


@pytest.fixture(scope="module")
def report():
    return _real_report()


def _report_only():
    return {k: v for k, v in _real_report().items() if k != "labels"}


def _report_with(predictions):
    return _with(_real_report(), predictions)


def test_05_13(report):
    report = {k: v for k, v in report.items() if k != "labels"}
    passes("05.13", report)
    passes("05.13", {**report, "predictions": {k: torch.tensor(v) for k, v in report["predictions"].items()},
                     "winner": {str(k): v for k, v in report["winner"].items()}})
    probs = {k: v * 0.9 for k, v in report["predictions"].items()}
    fails("05.13", {**report, "predictions": probs}, mentions="0/1")
    fails("05.13", {**report, "predictions": {("lstm", 250, 0): report["predictions"][("bow", 250, 1)]}}, mentions="unknown method")
    fails("05.13", {**report, "predictions": {("bow", 500, 1): report["predictions"][("bow", 250, 1)]}}, mentions="n_labels")
    fails("05.13", {"predictions": {}, "accuracy": {}}, mentions="'winner'")
    fails("05.13", ..., mentions="not answered")
    fails("05.13", None, mentions="not answered")


def _loser_at_1000():
    r = _report_only()
    return {**r, "winner": {**r["winner"], 1000: next(m for m in ("bow", "scratch", "ulmfit") if m != r["winner"][1000])}}


def _one_seed_missing():
    r = _report_only()
    kept = {k: v for k, v in r["predictions"].items() if k != ("ulmfit", 3600, 1)}
    return {**r, "predictions": kept, "accuracy": {k: v for k, v in r["accuracy"].items() if k in kept}}


def _flipped_bow():
    r = _report_only()
    return {**r, "predictions": {k: (1 - v if k[0] == "bow" else v) for k, v in r["predictions"].items()}}


def _invented(all_methods):
    """The test labels with random flips, tuned to plausible accuracies (for every method, or the two LSTMs only)."""
    r = _real_report()
    y, rng = r["labels"], np.random.default_rng(0)
    return _report_with({k: (np.where(rng.random(len(y)) > 0.7, 1 - y, y) if all_methods or k[0] != "bow" else v)
                         for k, v in r["predictions"].items()})


def _placeholder_ulmfit():
    r = _real_report()
    return _report_with({k: (np.ones(len(r["labels"]), dtype=np.int64) if k[0] == "ulmfit" else v)
                         for k, v in r["predictions"].items()})


# 05.14 ------------------------------------------------------------------------------------------


class StatefulLM(nn.Module):
    """LMModel3's state, kept across batches: the loop runs over the columns of x and ends with one detach.
    The `detach` flag plants the exercise's bug (the state keeps its whole history)."""

    detach = True

    def __init__(self, vocab_sz, n_hidden):
        super().__init__()
        self.i_h, self.h_o = nn.Embedding(vocab_sz, n_hidden), nn.Linear(n_hidden, vocab_sz)
        self.h_h = nn.Linear(n_hidden, n_hidden)
        self.h = 0

    def forward(self, x):
        h = self.h
        for tok in x.T:
            h = F.relu(self.h_h(h + self.i_h(tok)))
        self.h = h.detach() if self.detach else h
        return self.h_o(h)

    def reset(self):
        self.h = 0


class KeepsHistory(StatefulLM):
    detach = False


class Stateless(StatefulLM):
    def forward(self, x):
        self.reset()
        return super().forward(x)


def sampler_loader(ds, bs):
    """torch's DataLoader driven by an explicit BatchSampler over a SequentialSampler."""
    from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

    return DataLoader(ds, batch_sampler=BatchSampler(SequentialSampler(ds), bs, drop_last=True))


def fastai_loader(ds, bs):
    from fastai.data.load import DataLoader

    return DataLoader(ds, bs=bs, shuffle=False, drop_last=True)


def test_05_14():
    from fastai.data.core import DataLoaders

    passes("05.14", StatefulLM, sampler_loader)
    passes("05.14", StatefulLM, fastai_loader)
    fails("05.14", StatefulLM, lambda ds, bs: ds, mentions="batches")
    fails("05.14", StatefulLM, lambda ds, bs: 3, mentions="DataLoader")
    fails("05.14", StatefulLM, lambda ds, bs: DataLoaders(fastai_loader(ds, bs), fastai_loader(ds, bs)),
          mentions="DataLoaders pair")
    fails("05.14", crash, sampler_loader, mentions="raised")
    fails("05.14", StatefulLM, returns_none, mentions="None")
    fails("05.14", ..., ..., mentions="not answered")


def test_checks_leave_global_rngs_alone():
    import random

    states = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    passes("05.14", StatefulLM, fastai_loader)  # fastai's DataLoader draws from `random` when built
    passes("05.3", lm_batches_by_rows)
    fails("05.7", DropoutKeepP)
    assert random.getstate() == states[0]
    assert (np.random.get_state()[1] == states[1]).all()
    assert torch.equal(torch.get_rng_state(), states[2])


# Planted learner mistakes (run at the end of this module: each must be rejected with a hint naming it) -------------

_X6 = torch.arange(84).view(6, 14)[:, :5]  # the first window of each of the 6 sub-streams of 14 tokens
_WIDE = torch.arange(90).view(6, 15)[:, :5]

PLANTED = [
    # 05.1
    Planted("05.1", "replace_rep fires only from 4 repeats", lambda: (
        lambda t: re.sub(r"(\S)(\1{3,})", lambda m: f" xxrep {len(m.group(2)) + 1} {m.group(1)} ", t),
        wrep_by_chunks, maj_by_sets, caps_by_sets), mentions="replace_rep"),
    Planted("05.1", r"replace_rep repeats \w only, missing '!!!!' and ':))))'", lambda: (
        lambda t: re.sub(r"(\w)(\1{2,})", lambda m: f" xxrep {len(m.group(2)) + 1} {m.group(1)} ", t),
        wrep_by_chunks, maj_by_sets, caps_by_sets), mentions="replace_rep"),
    Planted("05.1", "replace_wrep ignores case ('NO no no no NO!')", lambda: (
        rep_by_runs, lambda t: re.sub(r"(?i)(?:\s|^)(\w+)\s+((?:\1\s+)+)\1(\s|\W|$)",
                                      lambda m: f" xxwrep {len(m.group(2).split()) + 2} {m.group(1)} {m.group(3)}", t),
        maj_by_sets, caps_by_sets), mentions="replace_wrep"),
    Planted("05.1", "replace_wrep counts 'go go goal' as three 'go'", lambda: (
        rep_by_runs, lambda t: wrep_by_chunks(t, whole_words=False), maj_by_sets, caps_by_sets), mentions="replace_wrep"),
    Planted("05.1", "replace_maj also fires on all caps and one-letter words", lambda: (
        rep_by_runs, wrep_by_chunks, lambda toks: [w for t in toks for w in (["xxmaj", t.lower()] if t[:1].isupper() else [t])],
        caps_by_sets), mentions="replace_maj"),
    Planted("05.1", "replace_all_caps marks one-letter tokens ('A', 'I') with xxup", lambda: (
        rep_by_runs, wrep_by_chunks, maj_by_sets,
        lambda toks: [w for t in toks for w in (["xxup", t.lower()] if t.isupper() else [t])]), mentions="replace_all_caps"),
    # 05.2
    Planted("05.2", "rows of 15 tokens: forgets the token held back for the last target",
            lambda: (_WIDE, _WIDE + 1, 3), mentions="14 tokens long"),
    Planted("05.2", "y not shifted: the targets are the inputs", lambda: (_X6, _X6, 3), mentions="first_y"),
    Planted("05.2", "one batch too few (the short last window forgotten)", lambda: (_X6, _X6 + 1, 2), mentions="n_batches"),
    Planted("05.2", "batches transposed to (seq_len, bs)", lambda: (_X6.T, _X6.T + 1, 3), mentions="shape"),
    # 05.3
    Planted("05.3", "x uses every token, so the last target runs past the stream", lambda: (lm_off_by_one,), mentions="LMDataLoader"),
    Planted("05.3", "the short last window dropped", lambda: (lm_drops_short,), mentions="batches"),
    Planted("05.3", "consecutive windows in consecutive rows (no sub-streams)", lambda: (lm_row_major,), mentions="lm_batches"),
    Planted("05.3", "y equals x (no shift)", lambda: (lambda nums, bs, sl: [(x, x) for x, _ in lm_batches_by_rows(nums, bs, sl)],),
            mentions="y differs"),
    # 05.4
    Planted("05.4", "weight gradients of the last step only, not summed over time",
            lambda: (rnn_forward_split, make_bptt(sum_steps=False)), mentions="dW"),
    Planted("05.4", "the tanh derivative forgotten", lambda: (rnn_forward_split, make_bptt(tanh_grad=False)), mentions="dW"),
    Planted("05.4", "no gradient carried back through time", lambda: (rnn_forward_split, make_bptt(through_time=False)), mentions="dW"),
    Planted("05.4", "forward ignores h0 and starts from zeros", lambda: (
        lambda x, h0, W, b, V, c: rnn_forward_split(x, np.zeros_like(h0), W, b, V, c), make_bptt()), mentions="h0"),
    # 05.5
    Planted("05.5", "GRU in Cho's form (reset gate before the matmul)", lambda: (lstm_by_gate, lambda *a: gru_by_gate(*a, form="cho")),
            mentions="reset gate"),
    Planted("05.5", "GRU update with z and 1 - z swapped", lambda: (lstm_by_gate, lambda *a: gru_by_gate(*a, form="swapped")),
            mentions="gru_cell"),
    Planted("05.5", "LSTM gate order i, f, o, g instead of torch's i, f, g, o",
            lambda: (lambda *a: lstm_by_gate(*a, order="ifog"), gru_by_gate), mentions="lstm_cell"),
    Planted("05.5", "LSTM returns (c_new, h_new)", lambda: (lambda *a: lstm_by_gate(*a)[::-1], gru_by_gate), mentions="lstm_cell"),
    # 05.6
    Planted("05.6", "no interleaving: the items in their original order", lambda: (lambda ds, bs: list(ds[: bs * (len(ds) // bs)]),),
            mentions="row"),
    Planted("05.6", "the len(ds) % bs left-over items kept", lambda: (
        lambda ds, bs: group_chunks_by_streams(ds, bs) + list(ds[bs * (len(ds) // bs):]),), mentions="len(ds) % bs"),
    Planted("05.6", "streams read row-major (item i*bs + j)", lambda: (
        lambda ds, bs: [ds[i * bs + j] for i in range(len(ds) // bs) for j in range(bs)],), mentions="row"),
    # 05.7
    Planted("05.7", "not inverted: survivors not scaled by 1/(1-p) (Weidman's form)", lambda: (DropoutNotInverted,), mentions="scaled"),
    Planted("05.7", "bernoulli_(p): keeps with probability p", lambda: (DropoutKeepP,), mentions="bernoulli_(1 - p)"),
    Planted("05.7", "drops in eval mode too", lambda: (DropoutAlways,), mentions="eval mode"),
    Planted("05.7", "modifies the input in place", lambda: (DropoutInPlace,), mentions="in place"),
    Planted("05.7", "a mask drawn once on the first call and reused", lambda: (DropoutCachedMask,), mentions="same elements"),
    # 05.8
    Planted("05.8", "AR on raw and TAR on dropped (swapped)", lambda: (
        lambda raw, dropped, a, b: a * raw.pow(2).mean() + b * dropped.diff(dim=1).pow(2).mean(),), mentions="swapped"),
    Planted("05.8", "TAR differences along the batch axis", lambda: (
        lambda raw, dropped, a, b: a * dropped.pow(2).mean() + b * raw.diff(dim=0).pow(2).mean(),), mentions="time axis"),
    Planted("05.8", "sums instead of means", lambda: (
        lambda raw, dropped, a, b: a * dropped.pow(2).sum() + b * raw.diff(dim=1).pow(2).sum(),), mentions="RNNRegularizer"),
    Planted("05.8", "the penalty computed on detached tensors", lambda: (
        lambda raw, dropped, a, b: ar_tar_mse(raw.detach(), dropped.detach(), a, b),), mentions="differentiable"),
    # 05.9
    Planted("05.9", "only the last word reaches the output", lambda: (lambda: PairGRU(last_word_only=True),), mentions="baseline"),
    Planted("05.9", "an output per input word, (bs, 2, 30)", lambda: (PairGRUAllSteps,), mentions="(5, 30)"),
    Planted("05.9", "a hidden layer of 8,192 units (over a million weights)", lambda: (
        lambda: nn.Sequential(nn.Embedding(30, 64), nn.Flatten(), nn.Linear(128, 8192), nn.ReLU(), nn.Linear(8192, 30)),),
        mentions="1,000,000"),
    # 05.10
    Planted("05.10", "Cho's GRU form in the cell", lambda: (ChoCell, LMGRUStacked), mentions="reset gate"),
    Planted("05.10", "state kept without detach", lambda: (GRUCellLerp, LMNoDetach), mentions="detach"),
    Planted("05.10", "state restarted from zeros every batch", lambda: (GRUCellLerp, LMNoKeep), mentions="batch 2"),
    Planted("05.10", "reset() that does nothing", lambda: (GRUCellLerp, LMBadReset), mentions="reset()"),
    Planted("05.10", "nn.GRUCell instead of the cell from scratch", lambda: (lambda ni, nh: nn.GRUCell(ni, nh), LMGRUStacked),
            mentions="`ih`"),
    # 05.11
    Planted("05.11", "logits multiplied by T instead of divided", lambda: (
        lambda l, t, g: int(torch.multinomial(F.softmax(l * max(t, 1e-9), -1), 1, generator=g)) if t else int(l.argmax()),),
        mentions="temperature"),
    Planted("05.11", "no T = 0 branch (division by zero)", lambda: (
        lambda l, t, g: int(torch.multinomial(F.softmax(l / t, -1), 1, generator=g)),), mentions="argmax"),
    Planted("05.11", "the generator not passed to multinomial", lambda: (
        lambda l, t, g: int(torch.multinomial(F.softmax(l / t, -1), 1)) if t else int(l.argmax()),), mentions="generator"),
    Planted("05.11", "always the argmax (temperature ignored)", lambda: (lambda l, t, g: int(l.argmax()),), mentions="temperature"),
    # 05.12
    Planted("05.12", "presence (0/1) instead of counts", lambda: (
        lambda docs, vocab: (bow_by_counter(docs, vocab) > 0).astype(np.float32), fit_lbfgs), mentions="CountVectorizer"),
    Planted("05.12", "columns in sorted order, not the vocab's", lambda: (
        lambda docs, vocab: bow_by_counter(docs, sorted(vocab)), fit_lbfgs), mentions="CountVectorizer"),
    Planted("05.12", "the model returned untrained", lambda: (bow_by_counter, fit_untrained), mentions="0.74"),
    Planted("05.12", "one logit instead of two", lambda: (bow_by_counter, lambda X, y: nn.Linear(X.shape[1], 1)), mentions="logits"),
    # 05.13
    Planted("05.13", "a winner that is not the best mean", lambda: (_loser_at_1000(),), mentions="winner[1000]"),
    Planted("05.13", "an accuracy typed in, not computed from the predictions", lambda: (
        {**_report_only(), "accuracy": {**_report_only()["accuracy"], ("scratch", 250, 1): 0.9}},),
        mentions="accuracy[('scratch', 250, 1)]"),
    Planted("05.13", "one seed only for a cell", lambda: (_one_seed_missing(),), mentions="2 seeds"),
    Planted("05.13", "bag-of-words labels flipped (1 = 'other')", lambda: (_flipped_bow(),), mentions="accuracy"),
    Planted("05.13", "made-up predictions for every method (labels with random flips)", lambda: (_invented(True),),
            mentions="bag of words retrained here"),
    Planted("05.13", "made-up predictions for the two LSTMs", lambda: (_invented(False),), mentions="look made up"),
    Planted("05.13", "the test labels themselves in one cell", lambda: (
        _report_with({**_real_report()["predictions"], ("ulmfit", 3600, 2): _real_report()["labels"].copy()}),),
        mentions="never the test labels"),
    Planted("05.13", "the seed never reached the LSTM run", lambda: (
        _report_with({**_real_report()["predictions"], ("scratch", 1000, 2): _real_report()["predictions"][("scratch", 1000, 1)]}),),
        mentions="identical"),
    Planted("05.13", "the seed never reached the bag of words' label sample", lambda: (
        _report_with({**_real_report()["predictions"], ("bow", 250, 2): _real_report()["predictions"][("bow", 250, 1)]}),),
        mentions="seed"),
    Planted("05.13", "a placeholder (always 'great') for a method never run", lambda: (_placeholder_ulmfit(),), mentions="placeholder"),
    # 05.14
    Planted("05.14", "the kept state never detached", lambda: (KeepsHistory, sampler_loader), mentions="detach"),
    Planted("05.14", "a loader that still shuffles", lambda: (
        StatefulLM, lambda ds, bs: torch.utils.data.DataLoader(ds, batch_size=bs, shuffle=True, drop_last=True)), mentions="shuffles"),
    Planted("05.14", "the last, smaller batch kept", lambda: (
        StatefulLM, lambda ds, bs: torch.utils.data.DataLoader(ds, batch_size=bs)), mentions="drop_last"),
    Planted("05.14", "the state reset at every forward (graph error 'fixed' by forgetting)", lambda: (Stateless, sampler_loader),
            mentions="not carried"),
]

test_planted_mistake_is_rejected_with_a_hint = planted_test(PLANTED)  # tests/test_planted.py checks it is here
