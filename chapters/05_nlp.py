# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Text: tokens, recurrent networks and language models
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dl-course/executable-deep-learning/blob/main/chapters/05_nlp.ipynb) [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/dl-course/executable-deep-learning/main?labpath=chapters%2F05_nlp.ipynb)
#
# A network only sees numbers. This chapter turns text into numbers (tokens, then ids), lays a corpus out so that
# a model can learn to predict the next token, and builds the recurrent networks that do it: first as equations
# in NumPy, checked against `torch.nn`, then as a ladder of models that climbs from a 3-word MLP to a regularized
# LSTM. It ends with ULMFiT, the recipe that first made transfer learning work for text, run end to end offline
# on Jane Austen and food reviews, and judged honestly against a bag-of-words baseline.
#
# **What you will learn**
#
# - to turn raw text into model input: word, subword and character tokens, fastai's rules and special tokens,
#   numericalization with a vocabulary limit; which tokenizers run offline and which need a download;
# - to lay a corpus out for language modelling (one stream, `bs` contiguous sub-streams, `seq_len` windows, targets
#   shifted by one token), and to predict a batch before printing it;
# - to write RNN, LSTM and GRU cells from their equations, backpropagate through time by hand, and match the
#   `torch.nn` cells exactly; why gradients explode and vanish over time, and what gating changes;
# - to climb the HUMAN_NUMBERS ladder against a most-common-token baseline, explaining each step: shared weights, a
#   loop, kept state with truncated BPTT, a target at every step, depth, gating, regularization;
# - to regularize recurrent nets the AWD-LSTM way: dropout from scratch, activation (AR) and temporal activation
#   (TAR) regularization, weight tying, weight decay;
# - to run ULMFiT offline (a general language model → fine-tuned on review text → a sentiment classifier with
#   gradual unfreezing and discriminative learning rates), sample text with a temperature, and say honestly when a
#   simple baseline wins.
#
# *Runs on a CPU in about 3 minutes.*

# %%
import sys
if "google.colab" in sys.modules:  # Colab only: add the course's package and what Colab lacks, keep Colab's torch
    # tested against a simulated Colab runtime (2026-12): Python 3.11, torch 2.14.1, fastai 2.8.12, numpy 2.4.6, pandas 3.1.1
    # %pip install -q "course-utils[colab] @ git+https://github.com/dl-course/executable-deep-learning@main"
from course_utils import setup, check
device = setup()

# %% [markdown]
# The first three sections run on the CPU whatever `device` says: tokenizers are CPU code, and the recurrent
# cells of section 3 are a few tiny matrices in float64, where a GPU would only add launch time. Every number they
# print is the same on every run.

# %%
import contextlib
import re
import socket
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit notices from fastai imports

from fastai.text.core import (SubwordTokenizer, Tokenizer, WordTokenizer, defaults, fix_html, lowercase,  # noqa: E402
                              replace_all_caps, replace_maj, replace_rep, replace_wrep, rm_useless_spaces,
                              spec_add_spaces, tokenize_texts)
from fastai.text.data import LMDataLoader, Numericalize  # noqa: E402
from fastcore.basics import first  # noqa: E402
from fastai.data.core import Pipeline  # noqa: E402  (fastai re-exports fasttransform's Pipeline)

from course_utils import data, plots  # noqa: E402
from course_utils.env import quiet_stderr  # noqa: E402

# %% [markdown]
# ## 1. From text to tokens
#
# Chapter 01 turned characters and words into numbers in two ways: a **one-hot** row per item (all zeros but a one
# at the item's index), and an **embedding**, a learned vector per item. They are the same thing: multiplying a
# one-hot row by a matrix picks one row of the matrix, and `nn.Embedding` simply skips the multiplication.

# %%
ids = torch.tensor([3, 0, 3, 1])  # four items from a vocabulary of 5
torch.manual_seed(0)
emb = nn.Embedding(5, 3)
one_hot = F.one_hot(ids, num_classes=5).float()
print("one-hot rows:", tuple(one_hot.shape),
      "| one_hot @ weight == emb(ids):", torch.allclose(one_hot @ emb.weight, emb(ids)))

# %% [markdown]
# The items are **tokens**: the units a text is cut into. The choice of cut is a trade-off.
#
# - **Words**: short sequences, but a huge vocabulary, and every typo, name or rare word is a new entry (or
#   becomes "unknown").
# - **Characters**: a vocabulary of a hundred or so, no unknown words, but sequences about five times longer, and the
#   model must learn spelling before meaning.
# - **Subwords**: frequent words stay whole, rare ones are cut into frequent pieces; the vocabulary size is a knob.
#
# ### A word tokenizer from scratch
#
# Splitting on spaces keeps punctuation glued to words ("great!" and "great" would be different tokens). A regular
# expression does better: a token is a run of letters and digits, or a single other character. fastai adds **rules**
# that keep information the split would lose while shrinking the vocabulary: a repeated character becomes
# `xxrep`, its count and the character; a word in capitals becomes `xxup` and the word in lower case; a
# Capitalized word becomes `xxmaj` and the word; each text starts with `xxbos` (beginning of stream). Three rules
# and a splitter, by hand:

# %%
WORD_RE = re.compile(r"\w+|[^\w\s]")  # a run of letters/digits/underscores, or one other non-space character


def scratch_tokenize(text):
    """A regex word splitter with three of fastai's rules written by hand."""
    text = re.sub(r"(\S)\1{2,}", lambda m: f" xxrep {len(m.group(0))} {m.group(1)} ", text)  # "!!!" -> xxrep 3 !
    tokens = ["xxbos"]
    for tok in WORD_RE.findall(text):
        if len(tok) > 1 and tok.isupper():  # GREAT -> xxup great
            tokens += ["xxup", tok.lower()]
        elif len(tok) > 1 and tok[0].isupper() and tok[1:].islower():  # Great -> xxmaj great
            tokens += ["xxmaj", tok.lower()]
        else:
            tokens.append(tok.lower())
    return tokens


sentences = ["This coffee is GREAT!!! I drink it every day.",
             "Sooo good, and the price is right: BUY it",
             "My dog loves these treats. Five stars from both of us!"]
fastai_tok = Tokenizer(WordTokenizer())
print("scratch:", scratch_tokenize(sentences[0]))
print("fastai: ", list(fastai_tok(sentences[0])))
print("sentence 2, scratch:", scratch_tokenize(sentences[1]))
print("same tokens on all three sentences:", all(scratch_tokenize(s) == list(fastai_tok(s)) for s in sentences))

# %% [markdown]
# A dozen lines agree with fastai token for token on ordinary sentences (the rules are blunt: "Sooo" becomes
# `s xxrep 3 o` in both). Now a harder sentence, without any rules: fastai's `WordTokenizer` is spaCy's rule-based
# English tokenizer, `spacy.blank("en")`, which needs no trained model and no download.

# %%
hard = "The U.S. dollar $1 is $1.00."
spacy_tokens = list(first(WordTokenizer()([hard])))
print("regex:", WORD_RE.findall(hard))
print("spaCy:", spacy_tokens)

# %% [markdown]
# spaCy keeps "U.S." and "1.00" whole and splits "$" off the number; our regex tears both apart. Abbreviations,
# prices, contractions ("don't" → "do", "n't"), URLs and emoticons are where a tokenizer's hundreds of exceptions
# earn their keep.
#
# ### fastai's `Tokenizer` on a real review
#
# The reviews (Amazon fine foods, 4,000 training and 1,000 test; section 6 classifies them) contain HTML line
# breaks, capitals and repeated punctuation. `Tokenizer(WordTokenizer())` applies the default rules to the text,
# then spaCy:

# %%
train_df, test_df = data.reviews()
review = train_df.review[1539]
print(repr(review))
print(list(fastai_tok(review)))
print("rules:", [f.__name__ for f in defaults.text_proc_rules])
print("special tokens:", defaults.text_spec_tok)

# %% [markdown]
# In order: `fix_html` turns `<br />` into a newline (kept as a token: a paragraph break carries meaning) and
# repairs HTML entities; `replace_rep` writes `!!!!!` as `xxrep 5 !`; `replace_wrep` does the same for a repeated
# word (`xxwrep`); `spec_add_spaces` puts spaces around `/` and `#`; `rm_useless_spaces` squeezes runs of spaces;
# `replace_all_caps` and `replace_maj` mark capitals with `xxup` and `xxmaj` and lower-case the word; `lowercase`
# lowers the rest and adds `xxbos`. In fastai 2 every one of these rules is a plain function on a *string*, run
# before spaCy splits anything (fastai 1 had a second list of rules on tokens). Order matters: `replace_all_caps` sees
# "U.S." before spaCy does and rewrites it as `xxup u.s.`, so the explorer below shows `xxup u.s .`: spaCy keeps
# "U.S." whole, but not "u.s.", which it does not know as an abbreviation. Each rule on its own:

# %%
for rule, text in [(fix_html, "Tasty!<br />Will buy again &lt;3"), (replace_rep, "sooooo good"),
                   (replace_wrep, "very very very very good"), (spec_add_spaces, "salt/pepper #1"),
                   (rm_useless_spaces, "too    many   spaces"), (replace_all_caps, "I LOVE IT"),
                   (replace_maj, "Great Taste"), (lowercase, "Fine.")]:
    print(f"{rule.__name__:17s} {text!r:36} -> {rule(text)!r}")

# %% [markdown]
# The other special tokens: `xxunk` stands for a word outside the vocabulary, `xxpad` pads texts of a batch to one
# length, `xxeos` ends a text, `xxfld` separates fields when a document has several (title, body).
#
# ### Subwords: sentencepiece
#
# fastai's `SubwordTokenizer` wraps Google's **sentencepiece**, which *learns* its pieces from a corpus: it starts
# from characters and keeps the pieces that best compress the text, until the vocabulary has `vocab_sz` entries.
# Spaces become part of the pieces (`▁` marks a piece that starts a word), so decoding is exact. We train it on the
# first 2,000 training reviews at three vocabulary sizes, after the same rules (so `xxbos`, `xxmaj`, … are in the
# text; fastai declares them as whole pieces).
#
# `sp.setup(texts)` would write the texts to a file and train; it also draws a progress bar, so we do its two
# steps ourselves, inside a temporary folder (sentencepiece writes files) and with its log lines silenced (it
# prints timestamps to the C-level standard error). We use the `bpe` algorithm (byte-pair encoding: start from
# characters and repeatedly merge the most frequent adjacent pair); fastai's default `unigram` starts from a large
# set of pieces and prunes the least useful, and takes several times longer to train.

# %%
prep = Pipeline(defaults.text_proc_rules)  # the rules Tokenizer applies before splitting
texts2k = [prep(t) for t in train_df.review[:2000]]
SIZES = (200, 1000, 5000)


def train_subwords(texts, vocab_sz, folder, model_type="bpe"):
    """Train a SubwordTokenizer: SubwordTokenizer.setup without its progress bar."""
    sp = SubwordTokenizer(vocab_sz=vocab_sz, cache_dir=folder, model_type=model_type)
    raw = Path(folder) / "texts.out"
    raw.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    with quiet_stderr():
        model = sp.train(raw)  # runs sentencepiece, writes spm.model into `folder`
    return SubwordTokenizer(sp_model=model, cache_dir=folder)


with tempfile.TemporaryDirectory() as tmp:
    subword = {sz: train_subwords(texts2k, sz, Path(tmp) / str(sz)) for sz in SIZES}

example = prep("Whenever I have a craving for something sweet, I rip open a bag.")
for sz, sp in subword.items():
    print(f"{sz:5d} pieces:", " ".join(first(sp([example]))))

# %% [markdown]
# With 200 pieces, most words are spelled out in fragments; with 5,000, almost every word of a review is one piece.
# **Characters** need no training at all: `list(text)`.

# %%
print(list("Sweet, 5 stars!")[:10])
char_vocab = ["xxunk"] + sorted(set("".join(texts2k)))
print("distinct characters in the 2,000 reviews:", len(char_vocab) - 1)

# %% [markdown]
# How long does a review get? The word tokenizer is the slow one (spaCy runs a Python loop per token), so we word-
# tokenize the first 1,000 reviews once and reuse the tokens below. `tokenize_texts` applies the rules and spaCy to
# a list; `n_workers=0` keeps it in this process (by default it starts a process pool and a progress bar).

# %%
N_WORDS = 1000
word_toks = tokenize_texts(list(train_df.review[:N_WORDS]), n_workers=0)
sample = texts2k[:N_WORDS]
per_review = {"characters": np.mean([len(list(t)) for t in sample]),
              **{f"{sz:,} subwords": np.mean([len(toks) for toks in subword[sz](sample)]) for sz in SIZES},
              "words": np.mean([len(t) for t in word_toks])}
vocab_sizes = {"characters": len(char_vocab) - 1,
               **{f"{sz:,} subwords": subword[sz].tok.GetPieceSize() for sz in SIZES},
               "words": len(Counter(t for toks in word_toks for t in toks))}
print(f"{'tokenizer':15s} {'vocabulary':>10s} {'tokens per review':>18s}")
for name in per_review:
    print(f"{name:15s} {vocab_sizes[name]:10,d} {per_review[name]:18.1f}")

fig, ax = plt.subplots(figsize=(6, 3.4))
ax.plot([vocab_sizes[n] for n in per_review], list(per_review.values()), "o-", color="C0")
for name in per_review:
    ax.annotate(name, (vocab_sizes[name], per_review[name]), textcoords="offset points", fontsize=8,
                xytext=(-20, -14) if name == "words" else (6, 4))
ax.set(xscale="log", yscale="log", xlabel="vocabulary size", ylabel="tokens per review",
       title=f"Bigger vocabularies, shorter sequences ({N_WORDS:,} reviews)")
ax.set_yticks([100, 200, 300, 400], ["100", "200", "300", "400"])
ax.minorticks_off()
ax.grid(True, alpha=0.3)
plt.show()

# %% [markdown]
# Each step to the right trades a bigger embedding matrix (and output layer, for a language model) for shorter
# sequences. Subwords sit in the middle and handle any new word; word vocabularies are usually capped and the rest
# mapped to `xxunk`.
#
# ### Numericalization
#
# The model needs integers. `Numericalize` builds the vocabulary from token counts: the 9 special tokens first,
# then every token seen at least `min_freq` times, most frequent first, at most `max_vocab` of them. From scratch,
# then with fastai:

# %%
counts = Counter(t for toks in word_toks for t in toks)
specials = defaults.text_spec_tok
by_count = sorted(counts.items(), key=lambda kv: -kv[1])  # stable: ties keep their first-seen order
scratch_vocab = specials + [w for w, c in by_count if c >= 3 and w not in specials]

num = Numericalize(min_freq=3, max_vocab=60000)
num.setup(word_toks)
print("first 9 entries:", num.vocab[:9])
print("next 12:", num.vocab[9:21])
print(f"vocabulary: {len(scratch_vocab):,} tokens seen >= 3 times (specials included);",
      f"fastai's list: {len(num.vocab):,}")
print("scratch vocab == fastai's:", num.vocab[:len(scratch_vocab)] == scratch_vocab,
      "| the rest:", set(num.vocab[len(scratch_vocab):]))

# %% [markdown]
# fastai pads the list to a multiple of 8 with `xxfake` entries (matrix sizes that are multiples of 8 run faster on
# GPUs); no token ever maps to them. Any token outside the vocabulary maps to id 0, `xxunk`, and `decode` maps ids
# back to tokens. `Pipeline` chains transforms: `Pipeline([tokenizer, num])` goes from a string to ids, and its
# `decode` runs each step's decoding in reverse.

# %%
pipe = Pipeline([fastai_tok, num])
sentence = "The zyxquat sauce is SO good!!!"
ids_s = pipe(sentence)
print("ids:   ", ids_s.tolist())
print("tokens:", list(num.decode(ids_s)))
print("decode:", repr(pipe.decode(ids_s)))
tokens_s = list(fastai_tok(sentence))
in_vocab = set(num.vocab)
print("round trip gives the tokens, unknown ones as xxunk:",
      list(num.decode(ids_s)) == [t if t in in_vocab else "xxunk" for t in tokens_s])

# %% [markdown]
# The round trip returns tokens, not the original string: the rules (lower case, markers) and the unknown words
# are one-way steps. What a model sees is exactly this list of ids.
#
# ### The tokenizer explorer
#
# Type a sentence and switch between word, subword (three vocabulary sizes) and character tokens; each token is
# shown above its id. Word ids come from the `Numericalize` vocabulary above (0 is `xxunk`), subword ids from
# sentencepiece's own table, character ids from the characters of the 2,000 reviews.

# %%
char_ids = {c: i for i, c in enumerate(char_vocab)}


def show_tokens(text="The U.S. dollar $1 is $1.00. LOVE it!!!", kind="word", vocab_sz=1000, width=100):
    """Print the tokens of `text` and their ids for one tokenizer."""
    if kind == "word":
        toks = list(fastai_tok(text))
        ids_ = [num.o2i.get(t, 0) for t in toks]
    elif kind == "subword":
        sp = subword[vocab_sz]
        toks = list(first(sp([prep(text)])))
        ids_ = [sp.tok.PieceToId(t) for t in toks]
    else:
        toks = list(text)
        ids_ = [char_ids.get(c, 0) for c in toks]
    print(f"{kind}{f' ({vocab_sz:,})' if kind == 'subword' else ''}: {len(toks)} tokens")
    line_t, line_i = "", ""
    for t, i in zip(toks, ids_):
        shown = repr(t)[1:-1] if t.isspace() else t
        w = max(len(shown), len(str(i))) + 1
        if len(line_t) + w > width:
            print(line_t.rstrip(), line_i.rstrip(), sep="\n")
            line_t, line_i = "", ""
        line_t, line_i = line_t + shown.ljust(w), line_i + str(i).ljust(w)
    print(line_t.rstrip(), line_i.rstrip(), sep="\n")


show_tokens()
show_tokens(kind="subword", vocab_sz=200)

# %% tags=["nbval-ignore-output"]
plots.explorer(
    show_tokens,
    text=widgets.Text(value="The U.S. dollar $1 is $1.00. LOVE it!!!", description="text",
                      continuous_update=False, layout=widgets.Layout(width="600px")),
    kind=widgets.ToggleButtons(options=["word", "subword", "character"], value="word", description="tokens"),
    vocab_sz=widgets.Dropdown(options=list(SIZES), value=1000, description="subwords"),
)

# %% [markdown]
# ### What runs offline
#
# | tokenizer | offline? |
# |---|---|
# | fastai `WordTokenizer` = `spacy.blank("en")`: rules only | yes, nothing to download |
# | sentencepiece training (`SubwordTokenizer`) | yes, it learns from your text |
# | Hugging Face `tokenizers` BPE/WordPiece *training* | yes |
# | NLTK `TreebankWordTokenizer` | yes (regular expressions) |
# | `spacy.load("en_core_web_sm")` (a trained pipeline) | no: a model package, not on PyPI, installed by `spacy download` |
# | `nltk.word_tokenize` | no: needs the `punkt` data |
# | a pretrained Hugging Face tokenizer (`AutoTokenizer.from_pretrained`) | no: downloads its vocabulary |
# | `torchtext` | retired: no longer maintained, use the above |
#
# The first two are what this chapter uses; we check them with the network switched off (every socket
# connection raises inside the block). A trained spaCy pipeline is simply not there.

# %%
@contextlib.contextmanager
def no_network():
    """Inside the block, opening any network connection raises ConnectionError."""
    saved = socket.socket.connect

    def refuse(*args, **kwargs):
        raise ConnectionError("network disabled")

    socket.socket.connect = refuse
    try:
        yield
    finally:
        socket.socket.connect = saved


import spacy  # noqa: E402

with no_network(), tempfile.TemporaryDirectory() as tmp:
    blank = spacy.blank("en")
    print("spacy.blank('en') offline:", [t.text for t in blank("Offline? Yes, it's fine.")])
    tiny = train_subwords(texts2k[:300], 100, tmp)
    print("sentencepiece trained offline:", tiny.tok.GetPieceSize(), "pieces")
    try:
        spacy.load("en_core_web_sm")
    except OSError as err:
        print("spacy.load('en_core_web_sm'): OSError", str(err).split("]")[0] + "]", "(no such package)")

# %% [markdown]
# ## 2. Language-model batches
#
# A language model learns to predict the next token from the ones before it. Its labels come free with the text
# (**self-supervision**), so any text will do. To train on a corpus, fastai concatenates all the documents into one
# **stream** of ids (documents are shuffled at the start of each epoch; the tokens inside a document never are),
# cuts the stream into `bs` equal **sub-streams** that become the rows of every batch, and walks along them
# `seq_len` tokens at a time. Row i of batch k+1 continues row i of batch k, so a model that keeps its hidden state
# between batches reads each sub-stream in order (section 4). The target `y` is the input `x` shifted by one token.
#
# Take a stream of 25 letters, `bs=3`, `seq_len=4`. The last input needs a target, so one token is held back: 24
# tokens make 3 rows of 8, and each row is read in 2 windows of 4.

# %%
def lm_batches_demo(stream, bs, seq_len):
    """Language-model batches when len(stream) - 1 is a multiple of bs * seq_len (the easy case)."""
    row_len = (len(stream) - 1) // bs
    assert row_len * bs == len(stream) - 1 and row_len % seq_len == 0, "only the easy case"
    rows = [stream[i * row_len:(i + 1) * row_len + 1] for i in range(bs)]  # each row, plus the token after it
    return [([r[k:k + seq_len] for r in rows], [r[k + 1:k + seq_len + 1] for r in rows])
            for k in range(0, row_len, seq_len)]


letters = list("abcdefghijklmnopqrstuvwxy")
for k, (x, y) in enumerate(lm_batches_demo(letters, bs=3, seq_len=4)):
    print(f"batch {k + 1}  x: {[''.join(r) for r in x]}  y: {[''.join(r) for r in y]}")

letter_ids = torch.tensor([ord(c) - ord("a") for c in letters])
fastai_batches = list(LMDataLoader([letter_ids], bs=3, seq_len=4))
same = all(torch.equal(torch.tensor([[ord(c) - ord("a") for c in r] for r in x]), xb) and
           torch.equal(torch.tensor([[ord(c) - ord("a") for c in r] for r in y]), yb)
           for (x, y), (xb, yb) in zip(lm_batches_demo(letters, 3, 4), fastai_batches))
print("scratch == LMDataLoader:", same and len(fastai_batches) == 2)

# %% [markdown]
# Read the columns: the rows of batch 1 end with `d`, `l`, `t`, and the rows of batch 2 start with `e`, `m`, `u`.
# Every `y` is its `x` moved one letter along, and the letter y, the last target, is never an input.
#
# fastbook draws the classic example, a stream of 90 tokens with `bs=6` and `seq_len=5`, as 6 rows of 15 and 3
# batches of (6, 5). fastai's `LMDataLoader` also holds back the token that the last input needs as its target, and
# cuts the rest to a multiple of `bs`: so the rows are a bit shorter than 15, and the last batch is a bit narrower.
# The figure shows where every token goes (colour = batch, solid box = the first batch's `x`, dashed = its `y`):
# work out its first batch by hand before exercise 05.2 asks you for it.

# %%
toy = LMDataLoader([torch.arange(90)], bs=6, seq_len=5)
print("90 tokens, bs=6, seq_len=5:", len(toy), "batches of shapes", [tuple(x.shape) for x, y in toy])
plots.draw_lm_batches(90, bs=6, seq_len=5)
plt.show()

# %% [markdown]
# The general case (any length, a shorter last batch) is exercise 05.3. On the reviews: numericalize the 1,000
# tokenized reviews and let `LMDataLoader` lay them out with fastai's defaults, `bs=64` and `seq_len=72`.

# %%
nums = [num(toks) for toks in word_toks]
stream = torch.cat(nums)
dl = LMDataLoader(nums, bs=64, seq_len=72)
x, y = first(dl)
row_len = (len(stream) - 1) // 64
print(f"stream: {len(stream):,} tokens -> 64 rows of {row_len:,} -> {len(dl)} batches")
print("x:", tuple(x.shape), "| y:", tuple(y.shape))
print("y is x shifted by one:", torch.equal(x[:, 1:], y[:, :-1]))
print("row i of x is the stream from i * row_len:",
      all(torch.equal(x[i], stream[i * row_len:i * row_len + 72]) and
          torch.equal(y[i], stream[i * row_len + 1:i * row_len + 73]) for i in range(64)))
print("row 0:", " ".join(num.vocab[int(t)] for t in x[0, :24]))

# %% [markdown]
# ## 3. RNN, LSTM and GRU from scratch
#
# ### A value used twice
#
# Chapter 03's framework (after Weidman) chains `Operation`s in a list: backward passes *one* gradient from each
# operation to the one before it, and each operation remembers only the last input it saw. A recurrent network
# breaks both assumptions. Its hidden state at step t is used twice, by
# step t's output and by step t+1, and its weights are used at every step. The chain rule then says: **add** the
# gradients that arrive along every path. A chain that passes a single gradient back loses all but one path.

# %%
w, x0 = 0.7, 1.2
h1 = np.tanh(w * x0)
h2 = np.tanh(w * h1)
# loss = h1 + h2: h1 reaches the loss directly, and through h2
one_path = w * (1 - h2 ** 2)  # only through h2
both_paths = 1.0 + w * (1 - h2 ** 2)  # the direct path, plus the one through h2
wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
h1t = torch.tanh(wt * x0)
h1t.retain_grad()
(h1t + torch.tanh(wt * h1t)).backward()
print(f"dloss/dh1 along one path {one_path:.6f} | summed over both {both_paths:.6f} | autograd {h1t.grad.item():.6f}")
dw = x0 * (1 - h1 ** 2) * both_paths + h1 * (1 - h2 ** 2)  # w is used at both steps: sum again
print(f"dloss/dw summed over its two uses {dw:.6f} | autograd {wt.grad.item():.6f}")

# %% [markdown]
# Autograd records the graph, whatever its shape, and *accumulates* into `.grad`: that is the whole fix. Doing it by
# hand for a recurrent net is called **backpropagation through time** (BPTT).
#
# ### The vanilla RNN, forward and backward by hand
#
# One step reads the input $x_t$ and the previous state $h_{t-1}$:
#
# $$h_t = \tanh(x_t W_{xh} + h_{t-1} W_{hh} + b), \qquad y_t = h_t V + c .$$
#
# Stacking $W = \begin{bmatrix} W_{xh} \\ W_{hh} \end{bmatrix}$ writes the same thing as
# $h_t = \tanh([x_t, h_{t-1}]\,W + b)$: one matrix acting on the concatenation. The **same** weights serve every
# step; the loop over t is the whole architecture. Here they are kept as two matrices, with a squared-error loss
# against a target at every step, $L = \tfrac12 \sum_t \lVert y_t - \text{target}_t \rVert^2$.
#
# Backward walks the steps in reverse. At step t the state receives two gradients, from its own output and from step
# t+1 ($dh_t = dy_t V^\top + da_{t+1} W_{hh}^\top$); through tanh, $da_t = dh_t \odot (1 - h_t^2)$; and each
# weight's gradient is the **sum** over steps of its per-step contribution.

# %%
T, B, n_in, nh, n_out = 7, 3, 4, 5, 2
rng = np.random.default_rng(0)
xs = rng.standard_normal((T, B, n_in))
h0 = rng.standard_normal((B, nh)) * 0.5
targets = rng.standard_normal((T, B, n_out))
rnn_p = {"W_xh": rng.normal(0, 0.5, (n_in, nh)), "W_hh": rng.normal(0, 0.5, (nh, nh)), "b": rng.normal(0, 0.1, nh),
         "V": rng.normal(0, 0.5, (nh, n_out)), "c": rng.normal(0, 0.1, n_out)}


def rnn_unroll(p, xs, h0):
    """All states (h0 first, then one per step) and all outputs of the vanilla RNN."""
    hs = [h0]
    for x in xs:
        hs.append(np.tanh(x @ p["W_xh"] + hs[-1] @ p["W_hh"] + p["b"]))
    hs = np.stack(hs)
    return hs, hs[1:] @ p["V"] + p["c"]


def rnn_bptt(p, xs, h0, targets):
    """Loss and gradients of 0.5 * sum((y - target)**2), by backpropagation through time."""
    hs, ys = rnn_unroll(p, xs, h0)
    dys = ys - targets
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    dh_next = np.zeros_like(h0)  # gradient arriving at h_t from step t+1
    for t in reversed(range(len(xs))):
        grads["V"] += hs[t + 1].T @ dys[t]
        grads["c"] += dys[t].sum(0)
        da = (dys[t] @ p["V"].T + dh_next) * (1 - hs[t + 1] ** 2)  # both uses of h_t, then through tanh
        grads["W_xh"] += xs[t].T @ da
        grads["W_hh"] += hs[t].T @ da  # h_{t-1} of this step is hs[t]
        grads["b"] += da.sum(0)
        dh_next = da @ p["W_hh"].T
    return 0.5 * (dys ** 2).sum(), grads, dh_next


loss_np, grads_np, dh0_np = rnn_bptt(rnn_p, xs, h0, targets)

# the same computation in torch, float64, differentiated by autograd
pt = {k: torch.tensor(v, requires_grad=True) for k, v in rnn_p.items()}
h = h0t = torch.tensor(h0, requires_grad=True)
loss_t = 0
for t in range(T):
    h = torch.tanh(torch.from_numpy(xs[t]) @ pt["W_xh"] + h @ pt["W_hh"] + pt["b"])
    loss_t = loss_t + 0.5 * ((h @ pt["V"] + pt["c"] - torch.from_numpy(targets[t])) ** 2).sum()
loss_t.backward()
agree = np.isclose(loss_np, loss_t.item(), rtol=1e-12) and np.allclose(dh0_np, h0t.grad.numpy(), atol=1e-12) and all(
    np.allclose(grads_np[k], pt[k].grad.numpy(), atol=1e-12) for k in rnn_p)
print("BPTT ≡ autograd:", agree)

# %% [markdown]
# `nn.RNN` is this loop in C++, with PyTorch's conventions: weights stored as (out, in), so `weight_ih_l0` is
# $W_{xh}^\top$, and two biases that are simply added. With copied weights it returns our states exactly:

# %%
torch_rnn = nn.RNN(n_in, nh).double()
with torch.no_grad():
    torch_rnn.weight_ih_l0.copy_(torch.from_numpy(rnn_p["W_xh"].T))
    torch_rnn.weight_hh_l0.copy_(torch.from_numpy(rnn_p["W_hh"].T))
    torch_rnn.bias_ih_l0.copy_(torch.from_numpy(rnn_p["b"]))
    torch_rnn.bias_hh_l0.zero_()
    out_t, h_last = torch_rnn(torch.from_numpy(xs), torch.from_numpy(h0)[None])
hs_np, _ = rnn_unroll(rnn_p, xs, h0)
print("nn.RNN output:", tuple(out_t.shape), "| ≡ scratch states:", np.allclose(out_t.numpy(), hs_np[1:], atol=1e-12),
      "| h_n is the last state:", torch.equal(h_last[0], out_t[-1]))

# %% [markdown]
# ### The cells, drawn
#
# The LSTM and the GRU replace the single tanh by **gates**: sigmoid layers whose outputs, between 0 and 1, decide
# elementwise how much of a signal passes.

# %%
plots.draw_recurrent_cells()
plt.show()

# %% [markdown]
# ### LSTM
#
# The long short-term memory cell (Hochreiter and Schmidhuber, 1997) carries two states: the **cell state** $c$, a
# conveyor belt that is only ever scaled and added to, and the hidden state $h$, its filtered read-out. From $x_t$
# and $h_{t-1}$ it computes four vectors, each with its own weights:
#
# $$\begin{aligned}
# i &= \sigma(x_t W_{xi} + h_{t-1} W_{hi} + b_i) && \text{input gate: how much new content to write} \\
# f &= \sigma(x_t W_{xf} + h_{t-1} W_{hf} + b_f) && \text{forget gate: how much of } c_{t-1} \text{ to keep} \\
# g &= \tanh(x_t W_{xg} + h_{t-1} W_{hg} + b_g) && \text{candidate content} \\
# o &= \sigma(x_t W_{xo} + h_{t-1} W_{ho} + b_o) && \text{output gate: how much of the cell to show} \\
# c_t &= f \odot c_{t-1} + i \odot g, \qquad h_t = o \odot \tanh(c_t).
# \end{aligned}$$
#
# From the equations, with one weight matrix per gate:

# %%
def sigmoid(a):
    return 1 / (1 + np.exp(-a))


n_in, nh, B = 3, 4, 2
rng = np.random.default_rng(1)
lstm_p = {gate: (rng.normal(0, 0.5, (n_in, nh)), rng.normal(0, 0.5, (nh, nh)), rng.normal(0, 0.2, nh))
          for gate in "ifgo"}  # per gate: W_x (n_in, nh), W_h (nh, nh), b (nh,)


def lstm_equations(x, h, c, p):
    pre = {gate: x @ Wx + h @ Wh + b for gate, (Wx, Wh, b) in p.items()}
    i, f, o, g = sigmoid(pre["i"]), sigmoid(pre["f"]), sigmoid(pre["o"]), np.tanh(pre["g"])
    c_new = f * c + i * g
    return o * np.tanh(c_new), c_new


x_in, h_in, c_in = rng.standard_normal((B, n_in)), rng.standard_normal((B, nh)), rng.standard_normal((B, nh))
h_eq, c_eq = lstm_equations(x_in, h_in, c_in, lstm_p)

# %% [markdown]
# Eight small matrix products per step (four gates, each reading x and h) run slower than two big ones: fastai's
# `LSTMCell` (fastbook ch. 12) computes all four gates with one product for x and one for h, to 4·nh outputs, and
# cuts the sum with `chunk(4, 1)`. (The book's first, naive `LSTMCell` joins h and x
# with `torch.stack`; it must be `torch.cat(..., dim=1)`.) The book orders the chunks input, forget, *output*,
# cell; PyTorch's `nn.LSTMCell` orders its rows input, forget, *cell*, output. Both are fine, as long as the weights
# are copied in the right order:

# %%
class FusedLSTMCell(nn.Module):
    """fastbook's LSTMCell: one matmul for all four gates, chunked in the order i, f, o, g."""

    def __init__(self, ni, nh):
        super().__init__()
        self.ih = nn.Linear(ni, 4 * nh)
        self.hh = nn.Linear(nh, 4 * nh)

    def forward(self, x, state):
        h, c = state
        gates = (self.ih(x) + self.hh(h)).chunk(4, 1)
        ingate, forgetgate, outgate = map(torch.sigmoid, gates[:3])
        cellgate = gates[3].tanh()
        c = forgetgate * c + ingate * cellgate
        h = outgate * c.tanh()
        return h, (h, c)


def stacked(p, order, part):
    """Part `part` (0: W_x, 1: W_h, else a bias) of every gate, stacked in `order` as PyTorch stores them:
    one block of rows per gate, each weight transposed to (out, in)."""
    return torch.from_numpy(np.concatenate([p[g][part].T if part < 2 else p[g][part] for g in order]))


fused, cell = FusedLSTMCell(n_in, nh).double(), nn.LSTMCell(n_in, nh).double()
with torch.no_grad():
    fused.ih.weight.copy_(stacked(lstm_p, "ifog", 0))
    fused.ih.bias.copy_(stacked(lstm_p, "ifog", 2))
    fused.hh.weight.copy_(stacked(lstm_p, "ifog", 1))
    fused.hh.bias.zero_()
    cell.weight_ih.copy_(stacked(lstm_p, "ifgo", 0))
    cell.weight_hh.copy_(stacked(lstm_p, "ifgo", 1))
    cell.bias_ih.copy_(stacked(lstm_p, "ifgo", 2))
    cell.bias_hh.zero_()
    xt_, ht_, ct_ = (torch.from_numpy(a) for a in (x_in, h_in, c_in))
    h_f, (_, c_f) = fused(xt_, (ht_, ct_))
    h_c, c_c = cell(xt_, (ht_, ct_))
print("equations ≡ fused (fastbook) ≡ nn.LSTMCell:",
      np.allclose(h_eq, h_f.numpy(), atol=1e-12) and np.allclose(c_eq, c_f.numpy(), atol=1e-12)
      and torch.allclose(h_f, h_c, atol=1e-12) and torch.allclose(c_f, c_c, atol=1e-12))

# %% [markdown]
# ### GRU
#
# The gated recurrent unit (Cho et al., 2014) merges the two states into one and uses two gates, **reset** $r$ and
# **update** $z$:
#
# $$\begin{aligned}
# r &= \sigma(x_t W_{xr} + b_{xr} + h_{t-1} W_{hr} + b_{hr}), \qquad z = \sigma(x_t W_{xz} + b_{xz} + h_{t-1} W_{hz} + b_{hz}) \\
# n &= \tanh\big(x_t W_{xn} + b_{xn} + r \odot (h_{t-1} W_{hn} + b_{hn})\big) \qquad \text{(PyTorch, cuDNN)} \\
# n &= \tanh\big(x_t W_{xn} + b_{xn} + (r \odot h_{t-1}) W_{hn} + b_{hn}\big) \qquad \text{(Cho et al., Weidman)} \\
# h_t &= (1 - z) \odot n + z \odot h_{t-1}.
# \end{aligned}$$
#
# The update gate interpolates between the old state and the candidate $n$: with $z = 1$ the state is copied
# unchanged. The two lines for $n$ differ in **where the reset gate acts**: PyTorch applies it after the hidden
# matrix product (which lets cuDNN do all the hidden products of a step at once), Cho et al. and Weidman before it.
# They are different functions, so only one can match `nn.GRUCell`:

# %%
gru_p = {gate: (rng.normal(0, 0.5, (n_in, nh)), rng.normal(0, 0.5, (nh, nh)), rng.normal(0, 0.2, nh),
                rng.normal(0, 0.2, nh)) for gate in "rzn"}  # per gate: W_x, W_h, b_x, b_h


def gru_equations(x, h, p, reset_after=True):
    (Wxr, Whr, bxr, bhr), (Wxz, Whz, bxz, bhz), (Wxn, Whn, bxn, bhn) = p["r"], p["z"], p["n"]
    r = sigmoid(x @ Wxr + bxr + h @ Whr + bhr)
    z = sigmoid(x @ Wxz + bxz + h @ Whz + bhz)
    if reset_after:  # PyTorch
        n = np.tanh(x @ Wxn + bxn + r * (h @ Whn + bhn))
    else:  # Cho et al. 2014, Weidman
        n = np.tanh(x @ Wxn + bxn + (r * h) @ Whn + bhn)
    return (1 - z) * n + z * h


gru_cell = nn.GRUCell(n_in, nh).double()
with torch.no_grad():
    for name, part in (("weight_ih", 0), ("weight_hh", 1), ("bias_ih", 2), ("bias_hh", 3)):
        getattr(gru_cell, name).copy_(stacked(gru_p, "rzn", part))
    h_torch = gru_cell(torch.from_numpy(x_in), torch.from_numpy(h_in)).numpy()
h_pt, h_cho = gru_equations(x_in, h_in, gru_p), gru_equations(x_in, h_in, gru_p, reset_after=False)
print("GRU (PyTorch form) ≡ nn.GRUCell:", np.allclose(h_pt, h_torch, atol=1e-12))
print("Cho-form GRU ≡ torch:", np.allclose(h_cho, h_torch, atol=1e-6))
print(f"largest difference, Cho form vs torch: {np.abs(h_cho - h_torch).max():.3f}")

# %% [markdown]
# The point is that "a GRU" is not one function (we did not compare how well the two forms train). Porting weights
# between libraries
# (Keras has a `reset_after` switch for this) or checking code against `nn.GRU` needs the right one.
#
# ### Exploding and vanishing gradients
#
# Backpropagating through T steps multiplies T Jacobians. In one dimension, a state that is multiplied by w at each
# step has gradient $w^T$ after T steps:

# %%
print(f"2^32 = {2 ** 32:,}   0.5^32 = {0.5 ** 32:.1e}")

# %% [markdown]
# A weight a little above 1 explodes, a little below 1 vanishes: a plain RNN cannot carry a gradient across many
# steps unless every factor stays very close to 1. The tanh makes it worse: its derivative $1 - h^2$ is at most 1.
# In an LSTM, the gradient along the cell state is multiplied by $f$ at each step, and nothing else: the network can
# learn to hold $f$ near 1. At initialization $f \approx \sigma(0) = 0.5$, the 0.5^T above, which is why a forget-gate
# bias of 1 (so $f \approx 0.73$ at the start) is a common choice.
#
# Measured on random sequences of 60 steps: the norm of the gradient of the last hidden state with respect to the
# input t steps earlier, for `nn.RNN` (tanh) and `nn.LSTM` with PyTorch's default initialization, and the LSTM
# with its forget-gate bias raised by 1.

# %%
T_long, B, n_in, nh = 60, 16, 8, 32
x_long = torch.randn(B, T_long, n_in, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def grad_by_distance(model):
    """||d sum(h_last) / d x_{T-1-k}|| for k = 0 .. T-1."""
    xr = x_long.clone().requires_grad_(True)
    out, _ = model(xr)
    out[:, -1].sum().backward()
    return xr.grad.norm(dim=(0, 2)).flip(0).numpy()


torch.manual_seed(0)
rnn60 = nn.RNN(n_in, nh, batch_first=True).double()
torch.manual_seed(0)
lstm60 = nn.LSTM(n_in, nh, batch_first=True).double()
torch.manual_seed(0)
lstm60_fb = nn.LSTM(n_in, nh, batch_first=True).double()
with torch.no_grad():
    lstm60_fb.bias_ih_l0[nh:2 * nh] += 1.0  # rows nh..2nh are the forget gate
norms = {"tanh RNN": grad_by_distance(rnn60), "LSTM": grad_by_distance(lstm60),
         "LSTM, forget bias +1": grad_by_distance(lstm60_fb)}

fig, ax = plt.subplots(figsize=(6, 3.4))
for name, g in norms.items():
    ax.semilogy(np.arange(T_long), g, label=name)
ax.set(xlabel="distance in time (steps back from the last output)", ylabel="gradient norm",
       title="How much gradient reaches earlier inputs")
ax.grid(True, alpha=0.3)
ax.legend()
plt.show()
print("tanh RNN: gradient at 30 steps < 1e-6 of that at 0:", norms["tanh RNN"][30] < 1e-6 * norms["tanh RNN"][0])
print("LSTM (forget bias +1) keeps >= 1000x more at 30 steps than the tanh RNN:",
      norms["LSTM, forget bias +1"][30] >= 1000 * norms["tanh RNN"][30])

# %% [markdown]
# Gating slows the decay; it does not abolish it, which is why language models still cut the stream into windows
# (truncated BPTT, section 4). Exploding gradients have a blunt cure, **gradient clipping**:
# `torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)` rescales the whole gradient whenever its norm
# exceeds `max_norm`, keeping its direction.
#
# ### Shapes for two kinds of task
#
# Weidman's character models feed **one-hot** characters: a batch is (batch, sequence, vocabulary). A recurrent
# layer turns it into (batch, sequence, hidden). What comes next depends on the task: a **next-token** head
# predicts at every step, so its loss uses every position; a **sentiment** head reads the last step only (the
# state after the whole text) and outputs one prediction per text.

# %%
pride = data.austen("prideprejudice")
austen_text = pride[pride.find("It is a truth"):][:143].replace("\n", " ")
print(repr(austen_text[:60]))
chars = sorted(set(austen_text))
c2i = {c: i for i, c in enumerate(chars)}
seq = torch.tensor([c2i[c] for c in austen_text])
seq_len, bsz = 20, 4
starts = torch.arange(bsz) * seq_len
xb = torch.stack([seq[s:s + seq_len] for s in starts])
yb = torch.stack([seq[s + 1:s + seq_len + 1] for s in starts])
x_onehot = F.one_hot(xb, len(chars)).float()

torch.manual_seed(0)
rnn_layer = nn.RNN(len(chars), 16, batch_first=True)
next_head, sentiment_head = nn.Linear(16, len(chars)), nn.Linear(16, 2)
states, _ = rnn_layer(x_onehot)
next_logits = next_head(states)
sent_logits = sentiment_head(states[:, -1])
next_loss = F.cross_entropy(next_logits.reshape(-1, len(chars)), yb.reshape(-1))
sent_loss = F.cross_entropy(sent_logits, torch.tensor([1, 0, 1, 1]))
print("one-hot batch (batch, seq, vocab):", tuple(x_onehot.shape))
print("RNN states (batch, seq, hidden):  ", tuple(states.shape))
print("next-token logits:", tuple(next_logits.shape), "-> loss over", yb.numel(), "targets")
print("sentiment logits: ", tuple(sent_logits.shape), "-> loss over", len(sent_logits), "targets")

# %% [markdown]
# Two details matter in practice. Cross-entropy wants classes in dimension 1 (or flattened logits, as here), and
# for a classifier only the last real token's state has read the whole text, so texts of different lengths need
# either padding at the *start* or a per-text index of their last real token. fastai does the second: a short text
# is padded at the end (section 6 gives the exact rule) and the pooling layer masks the padding out, taking the
# state after the last real token.
# One-hot input times `weight_ih` is an embedding lookup: real models use `nn.Embedding` instead, and Weidman's
# next model in PyTorch (`NextCharacterModel`, ch. 7) keeps the LSTM state between batches, detached, which is the
# idea section 4 builds on.

# %% [markdown]
# ## 4. The HUMAN_NUMBERS ladder
#
# *Deep Learning for Coders* ch. 12 builds a language model in seven small steps on a toy corpus where every
# improvement is visible in seconds: the numbers 1 to 9,999 written out in English. `course_utils.data` generates
# the two files of fastai's `URLs.HUMAN_NUMBERS` (train: 1 … 7,999; valid: 8,001 … 9,999; 8,000 is missing, as in
# the original). As in the book, we glue all lines into one stream with `.` between numbers, split on spaces and
# give each word an index in order of first appearance.

# %%
import warnings

warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit notices from fastai imports
warnings.filterwarnings("ignore", category=UserWarning, module="fastai")

import fastai.callback.schedule  # noqa: F401  adds fit_one_cycle to Learner
from fastai.callback.core import Callback
from fastai.callback.rnn import ModelResetter, RNNCallback, RNNRegularizer
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import accuracy
from fastai.text.learner import TextLearner
from fastai.torch_core import set_seed

from course_utils import data

train_lines, valid_lines = data.human_numbers()
print(f"lines: {len(train_lines):,} train + {len(valid_lines):,} valid | first valid line: {valid_lines[0].strip()!r}")
text = " . ".join(line.strip() for line in train_lines + valid_lines)
tokens = text.split(" ")
vocab = list(dict.fromkeys(tokens))  # unique words, in order of first appearance
word2idx = {w: i for i, w in enumerate(vocab)}
nums = [word2idx[w] for w in tokens]
print("the stream starts:", " ".join(tokens[:14]), "…")
print(f"{len(tokens):,} tokens | vocab of {len(vocab)}:", vocab)
print("'thousand' has index", word2idx["thousand"], "| the stream as indices:", nums[:14], "…")

# %% [markdown]
# **Task 1: predict the next word from the three before it.** Inputs are non-overlapping windows of three tokens
# (stride 3), the target is the token after each window. As in the book, the first 80% of the windows train and the
# last 20% validate, *in order*: no shuffling of the split. `DataLoaders.from_dsets` turns two lists of `(x, y)`
# pairs into fastai loaders (`num_workers=0`: tiny items are faster without worker processes).

# %%
bs, nh = 64, 64
LADDER_SEED = 42
seqs = [(torch.tensor(nums[i:i + 3]), nums[i + 3]) for i in range(0, len(nums) - 4, 3)]
cut = int(len(seqs) * 0.8)
print(f"{len(seqs):,} sequences of 3 | train {cut:,}, valid {len(seqs) - cut:,}")
print("first:", [vocab[i] for i in seqs[0][0]], "->", vocab[seqs[0][1]],
      "| second:", [vocab[i] for i in seqs[1][0]], "->", vocab[seqs[1][1]])
print("validation starts with:", " ".join(vocab[i] for i in nums[3 * cut:3 * cut + 12]), "…")
dls = DataLoaders.from_dsets(seqs[:cut], seqs[cut:], bs=bs, shuffle=False, num_workers=0, device=device)
xb, yb = dls.one_batch()
print("one batch:", tuple(xb.shape), tuple(yb.shape))

# %% [markdown]
# **Baseline first.** Before training anything: how often would "always say the most common validation word" be
# right? Because the split is sequential, validation is the numbers above ≈ 8,000, where every number contains
# "thousand"; so the most common target there is "thousand", not "." or "hundred" (the most common words overall).
# A model must beat this number to have learned anything.

# %%
valid_targets = torch.tensor([y for _, y in seqs[cut:]])
counts = torch.bincount(valid_targets, minlength=len(vocab))
top = counts.argmax().item()
baseline = counts[top].item() / len(valid_targets)
print(f"most common validation target: {vocab[top]!r} (index {top}), {counts[top].item()} of {len(valid_targets):,}"
      f" -> baseline accuracy {baseline:.4f}")

# %% [markdown]
# ### LMModel1 and LMModel2: three steps, one set of weights
#
# The first model reads the three words one at a time. Each word goes through the **same** embedding `i_h`
# (input → hidden), is added to the running hidden vector, and the **same** layer `h_h` (hidden → hidden) mixes
# them; `h_o` (hidden → output) scores the 30 words. Sharing the weights across positions is what makes this a
# recurrent network: `LMModel2` writes the identical computation as a loop. Loading one's weights into the other
# gives the same outputs, bit for bit.

# %%
class LMModel1(nn.Module):
    def __init__(self, vocab_sz, n_hidden):
        super().__init__()
        self.i_h = nn.Embedding(vocab_sz, n_hidden)
        self.h_h = nn.Linear(n_hidden, n_hidden)
        self.h_o = nn.Linear(n_hidden, vocab_sz)

    def forward(self, x):
        h = F.relu(self.h_h(self.i_h(x[:, 0])))
        h = h + self.i_h(x[:, 1])
        h = F.relu(self.h_h(h))
        h = h + self.i_h(x[:, 2])
        h = F.relu(self.h_h(h))
        return self.h_o(h)


class LMModel2(nn.Module):
    def __init__(self, vocab_sz, n_hidden):
        super().__init__()
        self.i_h = nn.Embedding(vocab_sz, n_hidden)
        self.h_h = nn.Linear(n_hidden, n_hidden)
        self.h_o = nn.Linear(n_hidden, vocab_sz)

    def forward(self, x):
        h = 0
        for i in range(3):
            h = h + self.i_h(x[:, i])
            h = F.relu(self.h_h(h))
        return self.h_o(h)


set_seed(LADDER_SEED, reproducible=True)
m1 = LMModel1(len(vocab), nh)
m2 = LMModel2(len(vocab), nh)
m2.load_state_dict(m1.state_dict())
x_cpu = torch.stack([x for x, _ in seqs[:bs]])
print(f"parameters: {sum(p.numel() for p in m1.parameters()):,} | output", tuple(m1(x_cpu).shape))
print("LMModel1 == LMModel2 with the same weights:", torch.equal(m1(x_cpu), m2(x_cpu)))

# %% [markdown]
# Training uses fastai's `Learner` with `fit_one_cycle`, the book's epochs and learning rates. Each model is
# built right after `set_seed(LADDER_SEED, reproducible=True)` (`LADDER_SEED = 42`), on the CPU, then moved to the
# device, so its initial weights are the same on every machine. `fit_ladder` trains inside `no_bar()` and
# `no_logging()` (progress bars and epoch tables would change every run) and keeps the validation accuracy of every
# epoch.

# %%
ladder = {}  # model name -> validation accuracy after each epoch
final_losses = {}  # model name -> (training loss, validation loss) of the last epoch


def fit_ladder(name, model, dls, epochs, lr, learner_cls=Learner, loss_func=F.cross_entropy, cbs=None, **fit_kwargs):
    learn = learner_cls(dls, model.to(device), loss_func=loss_func, metrics=accuracy, cbs=cbs)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(epochs, lr, **fit_kwargs)
    ladder[name] = [float(values[-1]) for values in learn.recorder.values]
    final_losses[name] = tuple(float(v) for v in learn.recorder.values[-1][:2])
    return learn


set_seed(LADDER_SEED, reproducible=True)
fit_ladder("LMModel1", LMModel1(len(vocab), nh), dls, 4, 1e-3)
set_seed(LADDER_SEED, reproducible=True)
learn2 = fit_ladder("LMModel2", LMModel2(len(vocab), nh), dls, 4, 1e-3)
gap_1_2 = max(abs(a2 - a1) for a1, a2 in zip(ladder["LMModel1"], ladder["LMModel2"]))
# sweep: ladder: largest epoch gap, LMModel2 vs LMModel1 0..0 over 6 runs; claim < 0.005
print("claim: LMModel2 trains like LMModel1 (accuracy within 0.005 every epoch):", gap_1_2 < 0.005)

# %% [markdown]
# Same function, same initial weights, same batches: on the CPU the two runs agree to the last bit. Both
# end near 0.49, far above the 0.15 baseline. But each prediction sees only three words, and the hidden
# state is thrown away after every sample.
#
# ### LMModel3: keep the state, cut the graph
#
# Keep `h` from one batch to the next, so the model can use everything it has read so far. Two things follow.
#
# - **Truncated backpropagation through time.** If `h` kept its history, the 300th batch's backward pass would run
#   through all 299 earlier batches (slow, and PyTorch frees each graph after its backward, so it fails with
#   "Trying to backward through the graph a second time"). `h.detach()` keeps the *values* and drops the graph:
#   gradients flow back three steps only.
# - **The batches must continue each other.** Row `i` of batch `k + 1` must be the text that follows row `i` of
#   batch `k`. Cut the `n` sequences into `bs` contiguous streams of `m = n // bs` (the `bs × m` grid of §2) and
#   read the grid column by column: batch `k` holds item `k` of every stream. fastbook's `group_chunks` does
#   this; the index arithmetic is below. Then `shuffle=False`, and `drop_last=True` so that every batch has `bs`
#   rows (a short last batch would not match the kept state). `reset()` zeroes the state; fastai's
#   `ModelResetter` callback calls it before training and before validation.

# %%
m = len(seqs) // bs
print("(m, bs, len(seqs)):", (m, bs, len(seqs)))


def stream_order(n, bs):
    """Item indices, batch after batch, such that row i of each batch continues row i of the batch before."""
    m = n // bs
    return torch.arange(m * bs).view(bs, m).T.reshape(-1).tolist()


print("stream_order(10, 2):", stream_order(10, 2))
train3 = [seqs[:cut][k] for k in stream_order(cut, bs)]
valid3 = [seqs[cut:][k] for k in stream_order(len(seqs) - cut, bs)]
dls3 = DataLoaders.from_dsets(train3, valid3, bs=bs, shuffle=False, drop_last=True, num_workers=0, device=device)
batches = iter(dls3.train)
(x_first, _), (x_second, _) = next(batches), next(batches)
print("row 5 of batch 0, then of batch 1:", " ".join(vocab[i] for i in x_first[5]), "|", " ".join(vocab[i] for i in x_second[5]))


class LMModel3(nn.Module):
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
        self.h = self.h.detach()  # keep the values, forget the graph: truncated BPTT
        return out

    def reset(self):
        self.h = 0


set_seed(LADDER_SEED, reproducible=True)
learn3 = fit_ladder("LMModel3", LMModel3(len(vocab), nh), dls3, 10, 3e-3, cbs=ModelResetter)
learn3.model.reset()
learn3.model(x_first)
print("after a forward pass the kept state", tuple(learn3.model.h.shape), "has no graph:", learn3.model.h.grad_fn is None)
learn3.model.reset()

# %% [markdown]
# ### LMModel4: a target at every step
#
# LMModel3 still gets one target per three inputs: two of every three hidden states are never asked to predict
# anything. Use windows of `sl = 16` tokens and predict the next token *after every one*: the targets are the
# inputs shifted by one, exactly the layout of §2. The output is `(bs, sl, vocab)`; cross-entropy wants
# `(N, vocab)` against `(N,)`, so flatten both (fastai's `CrossEntropyLossFlat` does the same).

# %%
sl = 16
seqs16 = [(torch.tensor(nums[i:i + sl]), torch.tensor(nums[i + 1:i + sl + 1])) for i in range(0, len(nums) - sl - 1, sl)]
cut16 = int(len(seqs16) * 0.8)
print(f"{len(seqs16):,} sequences of {sl} | train {cut16:,}, valid {len(seqs16) - cut16:,}")
print("x:", " ".join(vocab[i] for i in seqs16[0][0]))
print("y:", " ".join(vocab[i] for i in seqs16[0][1]))
train16 = [seqs16[:cut16][k] for k in stream_order(cut16, bs)]
valid16 = [seqs16[cut16:][k] for k in stream_order(len(seqs16) - cut16, bs)]
dls16 = DataLoaders.from_dsets(train16, valid16, bs=bs, shuffle=False, drop_last=True, num_workers=0, device=device)
print("batches per epoch: train", len(dls16.train), "| valid", len(dls16.valid))


class LMModel4(nn.Module):
    def __init__(self, vocab_sz, n_hidden, sl=16):
        super().__init__()
        self.i_h = nn.Embedding(vocab_sz, n_hidden)
        self.h_h = nn.Linear(n_hidden, n_hidden)
        self.h_o = nn.Linear(n_hidden, vocab_sz)
        self.sl, self.h = sl, 0

    def forward(self, x):
        outs = []
        for i in range(self.sl):
            self.h = self.h + self.i_h(x[:, i])
            self.h = F.relu(self.h_h(self.h))
            outs.append(self.h_o(self.h))
        self.h = self.h.detach()
        return torch.stack(outs, dim=1)

    def reset(self):
        self.h = 0


def flat_cross_entropy(logits, targets):
    return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


gen = torch.Generator().manual_seed(0)
fake_logits, fake_targets = torch.randn(4, sl, len(vocab), generator=gen), torch.randint(0, len(vocab), (4, sl), generator=gen)
print("flat_cross_entropy == CrossEntropyLossFlat:",
      torch.allclose(flat_cross_entropy(fake_logits, fake_targets), CrossEntropyLossFlat()(fake_logits, fake_targets)))
set_seed(LADDER_SEED, reproducible=True)
learn4 = fit_ladder("LMModel4", LMModel4(len(vocab), nh, sl), dls16, 15, 3e-3, loss_func=flat_cross_entropy, cbs=ModelResetter)

# %% [markdown]
# ### LMModel5: two stacked layers with `nn.RNN`
#
# `nn.RNN(n_hidden, n_hidden, n_layers, batch_first=True)` is the loop above (with tanh instead of ReLU) as one
# module, stacked `n_layers` deep: the second layer reads the first layer's hidden states. It returns the top
# layer's output at every step and the last state of every layer, shape `(n_layers, bs, n_hidden)`, which we keep
# (detached) for the next batch. Passing `None` as the state means zeros; `reset()` goes back to that, and the
# state is created on whatever device the input is on.

# %%
class LMModel5(nn.Module):
    def __init__(self, vocab_sz, n_hidden, n_layers):
        super().__init__()
        self.i_h = nn.Embedding(vocab_sz, n_hidden)
        self.rnn = nn.RNN(n_hidden, n_hidden, n_layers, batch_first=True)
        self.h_o = nn.Linear(n_hidden, vocab_sz)
        self.h = None

    def forward(self, x):
        res, h = self.rnn(self.i_h(x), self.h)
        self.h = h.detach()
        return self.h_o(res)

    def reset(self):
        self.h = None


set_seed(LADDER_SEED, reproducible=True)
learn5 = fit_ladder("LMModel5", LMModel5(len(vocab), nh, 2), dls16, 15, 3e-3, loss_func=CrossEntropyLossFlat(),
                    cbs=ModelResetter)
learn5.model.reset()
learn5.model(dls16.valid.one_batch()[0])
print("kept state (n_layers, bs, n_hidden):", tuple(learn5.model.h.shape), "| has a graph:", learn5.model.h.grad_fn is not None)
learn5.model.reset()

# %% [markdown]
# ### LMModel6: two layers of LSTM
#
# Twice the depth did not help the plain RNN. The table below shows why in this run: LMModel5 ends with a *lower*
# training loss than LMModel4 but the worst validation loss of the ladder, so it fits the training windows better and
# generalizes worse (it also swapped LMModel4's ReLU for `nn.RNN`'s tanh, so depth is not the only change). Depth
# over time has a second cost: a stacked RNN unrolled over 16 steps is a 32-layer network whose gradient is
# multiplied by the same kind of Jacobian at every step, so it shrinks or blows up (§3). The LSTM's cell state is updated by *addition*, `c' = f ⊙ c + i ⊙ g`, so gradients
# travel back through time along a path the forget gate scales gently instead of squashing at each step. Same
# interface, two states `(h, c)`, and the book's higher learning rate.

# %%
class LMModel6(nn.Module):
    def __init__(self, vocab_sz, n_hidden, n_layers):
        super().__init__()
        self.i_h = nn.Embedding(vocab_sz, n_hidden)
        self.rnn = nn.LSTM(n_hidden, n_hidden, n_layers, batch_first=True)
        self.h_o = nn.Linear(n_hidden, vocab_sz)
        self.h = None

    def forward(self, x):
        res, h = self.rnn(self.i_h(x), self.h)
        self.h = tuple(state.detach() for state in h)
        return self.h_o(res)

    def reset(self):
        self.h = None


set_seed(LADDER_SEED, reproducible=True)
learn6 = fit_ladder("LMModel6", LMModel6(len(vocab), nh, 2), dls16, 15, 1e-2, loss_func=CrossEntropyLossFlat(), cbs=ModelResetter)

# %% [markdown]
# ### LMModel7: the AWD-LSTM regularizers
#
# LMModel6 learns its training windows almost by heart: its last training loss is far below its validation loss
# (the table after LMModel7 shows both). Merity et al.'s AWD-LSTM regularizes an LSTM in four ways; the book's
# LMModel7 uses all of them.
#
# **Dropout** zeroes each activation with probability `p` during training and scales the survivors by
# `1 / (1 − p)`, so every activation keeps its expected value and nothing needs rescaling at inference, where
# dropout is the identity ("inverted" dropout). From scratch, with `bernoulli_` drawing the keep-mask:

# %%
class DropoutDemo(nn.Module):
    def __init__(self, p, generator=None):
        super().__init__()
        self.p, self.generator = p, generator

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        keep = torch.empty_like(x).bernoulli_(1 - self.p, generator=self.generator)
        return x * keep / (1 - self.p)


drop = DropoutDemo(0.5, generator=torch.Generator().manual_seed(0))
ones = torch.ones(1000, 1000)
dropped_ones = drop(ones)
# two decimals: the mask is random (torch even draws it differently on Intel CPUs, with MKL); over a million draws
# the fraction is 0.5 ± 0.0005 and the mean 1 ± 0.001 (one standard deviation), far from the next rounding step
print(f"training: fraction zeroed {(dropped_ones == 0).float().mean().item():.2f} | survivors equal"
      f" {dropped_ones[dropped_ones > 0].unique().tolist()} | mean {dropped_ones.mean().item():.2f}")
print("eval mode is the identity:", torch.equal(drop.eval()(ones), ones))

# %% [markdown]
# **Activation regularization (AR)** penalizes large outputs of the last LSTM layer (after dropout), like weight
# decay on activations; **temporal activation regularization (TAR)** penalizes change between consecutive steps of
# the raw outputs (before dropout), since text meaning rarely jumps. Two lines each, for the last layer's outputs
# `raw` and `dropped`, of shape `(bs, sl, nh)`:
#
# ```python
# ar = alpha * dropped.pow(2).mean()
# loss = loss + ar
# tar = beta * (raw[:, 1:] - raw[:, :-1]).pow(2).mean()
# loss = loss + tar
# ```
#
# **Weight tying**: the input embedding maps a word to a vector, the output layer maps a vector to word scores;
# sharing one matrix (`h_o.weight = i_h.weight`, both `(vocab, n_hidden)`) halves those parameters and helps.
# **Weight decay** `wd=0.1` in the optimizer completes the set.
#
# The model returns three things, `(logits, raw, dropped)`. fastai's `RNNCallback` stores `raw` and `dropped` and
# hands only the logits to the loss; `RNNRegularizer(alpha, beta)` then adds AR and TAR to the training loss.
# The book's first version, `cbs=[ModelResetter, RNNRegularizer(alpha=2, beta=1)]`, fails on fastai 2.8: the
# tuple-unpacking moved into `RNNCallback`, which must now be listed too. `TextLearner` does all of it: a `Learner`
# that adds `ModelResetter`, `RNNCallback` and `RNNRegularizer(alpha=2, beta=1)` itself and uses AWD-LSTM's
# momentums (0.8, 0.7, 0.8). As in the book, the final LMModel7 (dropout `p = 0.4`) trains through it,
# `fit_one_cycle(15, 1e-2, wd=0.1)`. The small callback `CheckPenalty` recomputes AR and TAR by hand on every
# training batch and compares them with what fastai added to the loss.

# %%
class LMModel7(nn.Module):
    def __init__(self, vocab_sz, n_hidden, n_layers, p):
        super().__init__()
        self.i_h = nn.Embedding(vocab_sz, n_hidden)
        self.rnn = nn.LSTM(n_hidden, n_hidden, n_layers, batch_first=True)
        self.drop = nn.Dropout(p)
        self.h_o = nn.Linear(n_hidden, vocab_sz)
        self.h_o.weight = self.i_h.weight  # weight tying
        self.h = None

    def forward(self, x):
        raw, h = self.rnn(self.i_h(x), self.h)
        dropped = self.drop(raw)
        self.h = tuple(state.detach() for state in h)
        return self.h_o(dropped), raw, dropped

    def reset(self):
        self.h = None


class CheckPenalty(Callback):
    """Runs after RNNRegularizer: is the loss it trains on (loss_grad) the plain loss + AR + TAR computed by hand?"""
    order = RNNRegularizer.order + 1

    def before_fit(self):
        self.all_equal = True

    def after_loss(self):
        if not self.training:
            return
        raw, dropped = self.learn.rnn.raw_out, self.learn.rnn.out  # stored by RNNCallback
        ar = 2 * dropped.pow(2).mean()
        tar = 1 * (raw[:, 1:] - raw[:, :-1]).pow(2).mean()
        self.all_equal &= torch.allclose(self.learn.loss_grad, self.learn.loss + ar + tar)


book_cell = Learner(dls16, LMModel7(len(vocab), nh, 2, 0.5).to(device), loss_func=CrossEntropyLossFlat(),
                    metrics=accuracy, cbs=[ModelResetter, RNNRegularizer(alpha=2, beta=1)])
try:
    with book_cell.no_bar(), book_cell.no_logging():
        book_cell.fit(1, 1e-2)
except AttributeError as err:
    print("the book's cbs on fastai 2.8 -> AttributeError:", err)

set_seed(LADDER_SEED, reproducible=True)
m7 = LMModel7(len(vocab), nh, 2, 0.4)
n_params = sum(p.numel() for p in m7.parameters())  # a shared tensor is counted once
print("tied:", m7.h_o.weight is m7.i_h.weight, f"| parameters: {n_params:,} (untied: {n_params + m7.h_o.weight.numel():,})")
check_penalty = CheckPenalty()
learn7 = fit_ladder("LMModel7", m7, dls16, 15, 1e-2, learner_cls=TextLearner, loss_func=CrossEntropyLossFlat(),
                    cbs=check_penalty, wd=0.1)
cb_names = [type(cb).__name__ for cb in learn7.cbs if type(cb).__name__ not in ("CheckPenalty", "ProgressCallback")]
print("TextLearner's callbacks:", cb_names, "(the first three are every Learner's)")
print(f"RNNRegularizer alpha {learn7.rnn_regularizer.alpha}, beta {learn7.rnn_regularizer.beta} | momentums:", learn7.moms)
print("loss + AR + TAR by hand == the loss fastai trained on, every training batch:", check_penalty.all_equal)

# %% [markdown]
# ### The ladder, side by side

# %% tags=["nbval-ignore-output"]
print(f"{'model':9s} {'epochs':>6s} {'accuracy':>8s} {'best':>6s} {'train loss':>10s} {'valid loss':>10s}")
print(f"{'baseline':9s} {'':>6s} {baseline:8.2f}")
for name, accs in ladder.items():
    print(f"{name:9s} {len(accs):6d} {accs[-1]:8.2f} {max(accs):6.2f} {final_losses[name][0]:10.2f} {final_losses[name][1]:10.2f}")
final = {name: accs[-1] for name, accs in ladder.items()}
print(f"LMModel4 - LMModel3: {final['LMModel4'] - final['LMModel3']:+.2f} | LMModel5 - LMModel4:"
      f" {final['LMModel5'] - final['LMModel4']:+.2f}")

# %%
final = {name: accs[-1] for name, accs in ladder.items()}
plain_rnns = ["LMModel1", "LMModel2", "LMModel3", "LMModel4", "LMModel5"]
# sweep: ladder: weakest model - baseline 0.2619..0.3444 over 6 runs; claim >= 0.09
print("claim: every model >= baseline + 0.09:", min(final.values()) >= baseline + 0.09)
# sweep: ladder: LMModel7 - best plain RNN 0.2179..0.3016 over 6 runs; claim >= 0.04
print("claim: LMModel7 >= every plain RNN (LMModel1-5) + 0.04:", final["LMModel7"] >= max(final[n] for n in plain_rnns) + 0.04)

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
for name, accs in ladder.items():
    ax1.plot(range(1, len(accs) + 1), accs, marker=".", label=name)
ax1.axhline(baseline, color="k", ls="--", lw=1, label="baseline")
ax1.set_xlabel("epoch")
ax1.set_ylabel("validation accuracy")
ax1.set_title("validation accuracy per epoch")
ax1.legend(fontsize=8, ncol=2)
ax1.grid(True, alpha=0.3)
names = list(final)
ax2.bar(range(len(names)), [final[n] for n in names], color=[f"C{i}" for i in range(len(names))])
ax2.axhline(baseline, color="k", ls="--", lw=1, label="most common word")
ax2.set_xticks(range(len(names)), [n.replace("LMModel", "M") for n in names])
ax2.set_ylim(0, 1)
ax2.set_title("final validation accuracy")
ax2.legend(loc="upper left")
plt.tight_layout()
plt.show()

# %% [markdown]
# Reading the ladder. One run is one draw: the ranges below are the final accuracies of the six runs of
# `course sweep 05` (five seeds, and one more under another CPU's numerics; `sweeps/05_nlp.results.md`), and a rung
# often moves as much from one seed to the next as the step between two rungs. So the cell above claims only what
# held with room to spare in every run: every model well above the baseline, and the regularized LSTM far above every
# plain RNN. The other steps (M3 over M1, M6 over the plain RNNs, M7 over M6) showed up in every run too, but with
# margins too thin to promise on every machine.
#
# - **M1 = M2** (0.41–0.50): three words of context, nothing more. Validation holds the numbers above 8,000, a range
#   the model never trained on; in one run of six, the last epoch fell back from 0.50 to 0.41.
# - **M3** (0.54–0.60): the same network, but the state carries everything read so far: 0.05 to 0.17 above M1 in
#   every run. Memory beats architecture.
# - **M4** (0.50–0.66): a target at every step gives 16 times more training signal per window, and it usually ends
#   above M3; but its curve jumps around (the book calls it unstable), so we promise no order between the two.
# - **M5** (0.52–0.56) usually *dips* below M4 (by up to 0.13; in one run of six it ended 0.02 above). Read the
#   losses in the table: its training loss is below M4's, its validation loss the worst of all. The second layer
#   did not make the net hard to *fit*; it made it overfit the training numbers (below 8,000) while validation asks
#   about 8,000-9,999. Two changes hide in this rung, the second layer and tanh instead of ReLU, so the table cannot
#   say which one caused the dip.
# - **M6** (0.66–0.79): it overfits too (training loss near 0, validation loss far above it), but the LSTM's additive
#   cell state carries the gradient across the window and the gates learn
#   what to keep (has this number had its "hundred" yet? then "hundred" cannot come again); the same depth that hurt
#   M5 now helps, 0.04 to 0.16 above the best plain RNN. It is also the rung that depends most on the seed, and on
#   the machine: the run under other CPU numerics moved it by 0.05.
# - **M7** (0.85–0.91): dropout, AR/TAR, weight tying and weight decay close most of the gap between training and
#   validation loss that M5 and M6 show: 0.12 to 0.19 above M6, and at least 0.22 above every plain RNN.
#
# ## 5. fastai text applications in one cell
#
# The book's first chapter trains an IMDb sentiment classifier with three lines:
#
# ```python
# dls = TextDataLoaders.from_folder(untar_data(URLs.IMDB), valid="test")
# learn = text_classifier_learner(dls, AWD_LSTM, drop_mult=0.5, metrics=accuracy)
# learn.fine_tune(4, 1e-2)
# ```
#
# With a data frame the first line is `TextDataLoaders.from_df(df, text_col="review", label_col="score",
# valid_pct=0.2, seed=42)`. It builds the `DataBlock` written out below (a `TextBlock` that tokenizes with spaCy's
# blank English tokenizer plus fastai's rules and numericalizes, a `CategoryBlock` for the label, a random 80/20
# split); we write it out for one reason, `n_workers=0`: `from_df` tokenizes in one process per CPU core, which
# costs more than it saves for a few hundred reviews. Here, 400 of the Amazon reviews. `text_classifier_learner`
# defaults to `pretrained=True`, which **downloads** WikiText-103 weights: we pass `pretrained=False` (a random
# AWD-LSTM of the standard size), and §6 replaces the download with a language model we train ourselves. At this
# size (three LSTM layers of 1,152 units) one epoch would take minutes on a CPU, so this cell stops at the data, the
# model and one forward pass; §6 trains a 64-dimensional version.

# %%
from fastai.data.block import CategoryBlock, DataBlock
from fastai.data.transforms import ColReader, RandomSplitter
from fastai.text.all import AWD_LSTM, TextBlock, text_classifier_learner

reviews_df, _ = data.reviews()
small = reviews_df.iloc[:400]
review_block = DataBlock(blocks=(TextBlock.from_df("review", n_workers=0), CategoryBlock),
                         get_x=ColReader("text"), get_y=ColReader("score"), splitter=RandomSplitter(0.2, seed=42))
dls_book = review_block.dataloaders(small, bs=32, num_workers=0, device=device)
learn_book = text_classifier_learner(dls_book, AWD_LSTM, pretrained=False, drop_mult=0.5, metrics=accuracy)
print(f"reviews: {len(dls_book.train_ds)} train / {len(dls_book.valid_ds)} valid | labels: {list(dls_book.vocab[1])}"
      f" | vocab {len(dls_book.vocab[0]):,}, starts {dls_book.vocab[0][:10]}")
print("first review as tokens:", " ".join(dls_book.valid_ds.decode(dls_book.valid_ds[0])[0].split()[:14]), "…")
xb_book, yb_book = dls_book.valid.one_batch()
print("one validation batch:", tuple(xb_book.shape), tuple(yb_book.shape), "(padded to its longest review)")
print("model:", type(learn_book.model).__name__, "=", [type(part).__name__ for part in learn_book.model],
      f"| {sum(p.numel() for p in learn_book.model.parameters()):,} parameters")
book_pad = dls_book.vocab[0].index("xxpad")
first_two = torch.stack([row[row != book_pad][:20] for row in xb_book[:2]])  # padding can come first: keep real tokens
with torch.no_grad():
    print("logits for the first 2 reviews (first 20 tokens):", tuple(learn_book.model.to(device).eval()(first_two)[0].shape))

# %% [markdown]
# ## 6. ULMFiT, staged offline
#
# ULMFiT (Howard & Ruder, 2018) is transfer learning for text in three stages:
#
# 1. a **general language model**: predict the next token of a large corpus (fastai downloads an AWD-LSTM trained on
#    WikiText-103, 103 million tokens of Wikipedia);
# 2. the same model **fine-tuned as a language model on the target domain** (fastbook: IMDb reviews);
# 3. its encoder under a **classifier head**, trained on the labels with gradual unfreezing.
#
# Nothing can be downloaded here, so every stage is small and offline: stage 1 reads three Jane Austen novels (the
# course trains it once on the CPU and caches it), stage 2 reads the 4,000 training reviews, stage 3 learns
# "great" (5 stars) vs "other" from their labels. The architecture and every fastai call are the book's; only the
# sizes shrink: embeddings of 64, two LSTM layers of 128, a vocabulary of about 3,000 tokens.
#
# One rule throughout: the 1,000 test reviews are used only to score the classifiers, never to train anything. fastbook
# also fed the unlabelled IMDb *test* texts to its stage-2 language model; we keep them out.

# %%
import math
import pickle
import random
import tempfile
import textwrap
import warnings
from pathlib import Path

import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # torch.jit notices from fastai's imports
    from fastai.text.all import (AWD_LSTM, CategoryBlock, ColReader, ColSplitter, CrossEntropyLossFlat, DataBlock,
                                 DataLoaders, Perplexity, Pipeline, ShortEpochCallback, TensorText, TextBlock,
                                 Transform, accuracy, awd_lstm_clas_config, awd_lstm_lm_config, language_model_learner, set_seed,
                                 text_classifier_learner)

from course_utils import data
from course_utils.pretrained import (AUSTEN_LM_BOOKS, austen_lm, austen_paragraphs, review_lm, review_lm_loaders,
                                     review_lm_text)

warnings.filterwarnings("ignore", category=UserWarning, module="fastai")
warnings.filterwarnings("ignore", category=FutureWarning)

ulmfit_dir = Path(tempfile.mkdtemp(prefix="ulmfit-"))  # learners save and load encoders here, never in the repo
ULMFIT_SEED = 42


def reseed(seed=42, *loaders):
    """Seed Python, NumPy and torch (fastai's set_seed) and the private generators of fastai loaders.

    Called before constructing each model, so that every model starts from the same state whatever ran before it.
    """
    set_seed(seed, reproducible=True)
    for dl in loaders:
        dl.rng = random.Random(seed)

# %% [markdown]
# ### Stage 1: a general language model (cached)
#
# The corpus: Jane Austen's six novels are on this machine (Debian's `r-cran-janeaustenr`). Words here are what
# `str.split()` returns, the definition used for every count in this chapter.

# %%
novels = data.austen_books()
print(f"Austen: {len(novels)} novels, {sum(t.count(chr(10)) + 1 for t in novels.values()):,} lines, "
      f"{sum(len(t.split()) for t in novels.values()):,} words")
paragraphs = [p for book in AUSTEN_LM_BOOKS for p in austen_paragraphs(novels[book])]
print(f"stage 1 reads {', '.join(AUSTEN_LM_BOOKS)}: {len(paragraphs):,} paragraphs, "
      f"{sum(len(p.split()) for p in paragraphs):,} words")
print(paragraphs[4][:110], "...")

# %% [markdown]
# A paragraph is a block between blank lines, so chapter headings count as (short) paragraphs. Stage 1 is the book's
# language-model recipe, only smaller. `course data` ran this code once (about 3 minutes on one CPU thread, seed 42), in
# `course_utils.pretrained.pretrain_austen_lm`:
#
# ```python
# df = pd.DataFrame({"text": paragraphs})
# dls = DataBlock(blocks=TextBlock.from_df("text", is_lm=True, max_vocab=3000, min_freq=3),
#                 get_x=ColReader("text"), splitter=RandomSplitter(0.1, seed=42)).dataloaders(df, bs=64, seq_len=72)
# learn = language_model_learner(dls, AWD_LSTM, config=dict(awd_lstm_lm_config, emb_sz=64, n_hid=128, n_layers=2),
#                                pretrained=False, drop_mult=0.3, metrics=[accuracy, Perplexity()])
# learn.fit_one_cycle(5, 1e-2)
# torch.save(learn.model.state_dict(), "models/austen_lm.pth")   # the weights
# pickle.dump(list(dls.vocab), open("models/austen_lm.pkl", "wb"))  # the vocab they belong to
# ```
#
# These two files are exactly what fastai downloads for WikiText-103: a state dict and its vocabulary, in a `models/`
# folder. `austen_lm()` returns that folder (training it first if `course data` has not) and the scores recorded when
# it was trained. It is always trained on the CPU, so the CPU and GPU kernels start stage 2 from the same weights.

# %%
lm_dir, lm_info = austen_lm()
austen_vocab = pickle.load(open(lm_dir / "austen_lm.pkl", "rb"))
print("files:", sorted(p.name for p in lm_dir.glob("austen_lm.*")))
print("Austen vocab:", len(austen_vocab), "tokens; first 12:", austen_vocab[:12])

# %% tags=["nbval-ignore-output"]
print(f"Austen LM validation accuracy {lm_info['valid_accuracy']:.2f}, perplexity {lm_info['valid_perplexity']:.0f}"
      f" (a uniform guess: accuracy 1/{lm_info['vocab_size']}, perplexity {lm_info['vocab_size']:,})")

# %% [markdown]
# `course data` trained this model on your machine, so the two numbers above are yours; what holds on every machine:

# %%
# The seed sweep reuses the cached model, so its six values are one. Retrained with seeds 1051 and 2060, stage 1
# scored accuracy 0.2206 and 0.2276, perplexity 68.4 and 65.6: the thresholds keep their margin there too.
# sweep: Austen LM validation accuracy 0.2263..0.2263 over 6 runs; claim >= 0.18
print("claim: Austen LM validation accuracy >= 0.18:", lm_info["valid_accuracy"] >= 0.18)
# sweep: Austen LM validation perplexity 66.49..66.49 over 6 runs; claim < 80
print("claim: Austen LM validation perplexity < 80:", lm_info["valid_perplexity"] < 80)

# %% [markdown]
# **Perplexity** is exp(cross-entropy): the model is, on average, as unsure as a uniform choice among that many
# tokens. A uniform guess over the vocabulary has perplexity 3,008; the Austen model, after 5 epochs of 1810s prose, is
# down to the value printed above (below 80 on every machine). About one token in four it predicts exactly.
#
# ### Stage 2: fine-tune the language model on reviews (cached, with a live taste)
#
# The review texts, with the HTML line breaks `<br />` removed and cut to their first 40 words (the budget: an LM's
# cost is dominated by the decoder, one 3,000-way softmax per token). Only the 4,000 *training* reviews; 10% of them
# (chosen at random) validate the language model.

# %%
train_df, test_df = data.reviews()
print("an LM text:", review_lm_text(train_df["review"][1539])[:100], "...")
reseed(ULMFIT_SEED)
dls_lm = review_lm_loaders([review_lm_text(r) for r in train_df["review"]], device=device, path=ulmfit_dir)
shared_tokens = set(dls_lm.vocab) & set(austen_vocab)
print("review vocab:", len(dls_lm.vocab), "tokens;", len(shared_tokens), "of them also in Austen's vocab")
print("review words Austen never used (a few):", [w for w in dls_lm.vocab[:300] if w not in shared_tokens][:10])
print("LM batches: train", len(dls_lm.train), "valid", len(dls_lm.valid), "of (64, 72)")

# %% [markdown]
# The two vocabularies differ: Austen's 3,000 commonest tokens have no "product", "flavor" or "amazon".
# `language_model_learner(..., pretrained_fnames=(weights, vocab))` reads the two files and calls `match_embeds`:
# each review token that Austen's vocab knows gets its Austen row of the embedding (and of the tied decoder), each
# new token the *mean* Austen embedding. That is why the `.pkl` must be the vocab saved with the weights: with any
# other list, rows would be copied to the wrong words without an error. Then the learner is frozen: only the
# embeddings and the decoder train at first, so the new words find their place before the LSTM layers are disturbed.
#
# fastai looks for the files in `learn.path / learn.model_dir`; an absolute path (ours) overrides that. The
# comparison: the same model from random weights (`pretrained=False`), trained for the same two epochs at the same
# rates. It has nothing to protect, so fastai never freezes it: its first epoch trains every layer. Here is stage 2 as the course
# runs it, `course_utils.pretrained.finetune_review_lm`:
#
# ```python
# learn = language_model_learner(dls_lm, AWD_LSTM, config=lm_config, drop_mult=0.3, metrics=[accuracy, Perplexity()],
#                                pretrained_fnames=(austen_dir / "austen_lm", austen_dir / "austen_lm"))
# learn.fit_one_cycle(1, 2e-2)   # frozen: only the embeddings and the decoder train
# learn.unfreeze()
# learn.fit_one_cycle(1, 1e-2)   # every layer
# learn.save_encoder("reviews_encoder")  # what stage 3 loads
# ```
#
# Two such runs (Austen start and random start, two epochs each) cost about a minute of CPU, too much for this
# chapter's three-minute budget on top of the classifiers, so `course data` ran them once, on the CPU with seed 42,
# and cached the fine-tuned model, its encoder and both perplexity curves (`course_utils.pretrained.review_lm()`).
# Live, we run the first 20 batches of the frozen epoch, enough to watch the Austen model adapt:

# %%
lm_config = dict(awd_lstm_lm_config, **lm_info["config"])  # emb_sz 64, n_hid 128, n_layers 2: the sizes of stage 1
austen_files = (lm_dir / "austen_lm", lm_dir / "austen_lm")  # .pth and .pkl are added by fastai
reseed(ULMFIT_SEED, dls_lm.train)
demo = language_model_learner(dls_lm, AWD_LSTM, config=lm_config, drop_mult=0.3, metrics=[accuracy, Perplexity()],
                              pretrained_fnames=austen_files, path=ulmfit_dir)
with demo.no_bar(), demo.no_logging():
    before = demo.validate()[2]
    demo.fit_one_cycle(1, 2e-2, cbs=ShortEpochCallback(pct=20 / len(dls_lm.train), short_valid=False))
    after = demo.validate()[2]
# sweep: demo: perplexity after 20 frozen batches / before 0.497..0.5032 over 6 runs; claim < 0.7
print("claim: review perplexity of the Austen LM after 20 frozen batches < 0.7 x before:", after < 0.7 * before)

# %% tags=["nbval-ignore-output"]
print(f"review perplexity of the Austen LM: {before:.0f} before, {after:.0f} after 20 frozen batches")

# %% [markdown]
# The full stage 2, from the cache. The vocab it was trained with must be the one we just built, row for row
# (otherwise its embedding rows would belong to other words); it is, because tokenization and vocab are deterministic.

# %%
review_dir, review_info = review_lm()
print("cached stage 2 was trained with this very vocab:",
      pickle.load(open(review_dir / "review_lm.pkl", "rb")) == list(dls_lm.vocab))
learn_lm = language_model_learner(dls_lm, AWD_LSTM, config=lm_config, drop_mult=0.3, pretrained=False, path=ulmfit_dir)
keys = learn_lm.model.load_state_dict(torch.load(review_dir / "review_lm.pth", map_location="cpu", weights_only=True))
print("every weight of the cached model found its place:", not keys.missing_keys and not keys.unexpected_keys)
learn_lm.save_encoder("reviews_encoder")  # into ulmfit_dir / "models": stage 3 loads it
print("encoder saved:", sorted(p.name for p in (ulmfit_dir / "models").iterdir()))
ppl_pre, ppl_scratch = review_info["perplexity_pretrained"], review_info["perplexity_scratch"]

# %% tags=["nbval-ignore-output"]
print("review LM validation perplexity   before   1 epoch   2 epochs")
print(f"  Austen-initialized            {ppl_pre[0]:8.0f}  {ppl_pre[1]:8.0f}  {ppl_pre[2]:8.0f}")
print(f"  from scratch                  {ppl_scratch[0]:8.0f}  {ppl_scratch[1]:8.0f}  {ppl_scratch[2]:8.0f}")

# %%
# cached too; stage 1 and 2 retrained with seeds 1051 and 2060 gave ratios 0.4519 and 0.4388
# sweep: review LM: pretrained / scratch perplexity 0.4314..0.4314 over 6 runs; claim <= 0.7
print("claim: pretrained review perplexity <= 0.7 x scratch:", ppl_pre[-1] <= 0.7 * ppl_scratch[-1])
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot([0, 1, 2], ppl_pre, "o-", label="Austen LM (epoch 1 frozen, epoch 2 unfrozen)")
ax.plot([0, 1, 2], ppl_scratch, "s-", label="from scratch (never frozen)")
ax.grid(True, alpha=0.3)
ax.set(yscale="log", xticks=[0, 1, 2], xticklabels=["start", "1", "2"], xlabel="epoch on reviews",
       ylabel="validation perplexity (log)", title="Stage 2: the same two epochs, two starting points")
ax.legend(loc="upper right", fontsize=8)
plt.show()

# %% [markdown]
# This is transfer, and it is large: after the same two epochs the Austen-initialized model is far less perplexed by
# reviews than the one that started from random weights (about 110 against about 250). Before any training it is
# already far better than random (about 280, where a random model is near 3,000, a uniform guess over the vocab):
# articles, pronouns, punctuation and capitalization work the same in 1815 and in 2010. The frozen epoch does most of
# the work, with the LSTM layers untouched.
#
# The fine-tuned model can write. Sampling draws each next token from the softmax of logits / temperature (exercise
# 05.11): low temperatures repeat the likeliest words, high ones wander. The text depends on the device's floating
# point, so this cell's output is not compared; the explorer at the end of this section lets you play.

# %% tags=["nbval-ignore-output"]
with learn_lm.no_bar(), learn_lm.no_logging():
    print(learn_lm.predict("this coffee is", 12, temperature=0.75, no_bar=True))

# %% [markdown]
# ### Stage 3: the classifier (live)
#
# The labelled data: all 5,000 reviews with their label, cut to 40 words as for the LM, and a column that marks the
# test reviews, so that `ColSplitter` keeps the given split (4,000 train / 1,000 test). The `TextBlock` must reuse the
# language model's vocab (`vocab=dls_lm.vocab`): the encoder's embedding row *i* belongs to token *i* of that list,
# and `load_encoder` would not notice a mismatch. `Truncate(48)` keeps each review's first 48 tokens.

# %%
class Truncate(Transform):
    """Keep the first n tokens of a numericalized text (an item transform, before padding)."""

    def __init__(self, n=48):
        self.n = n

    def encodes(self, x: TensorText):
        return x[: self.n]


reviews_clas = pd.concat([pd.DataFrame({"text": df["review"].map(review_lm_text), "label": df["score"], "is_test": test})
                          for df, test in ((train_df, False), (test_df, True))], ignore_index=True)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    text_block = TextBlock.from_df("text", vocab=dls_lm.vocab, seq_len=72, n_workers=0)
    dblock_clas = DataBlock(blocks=(text_block, CategoryBlock),
                            get_x=ColReader("text"), get_y=ColReader("label"), splitter=ColSplitter("is_test"),
                            item_tfms=Truncate(48))
    dls_clas = dblock_clas.dataloaders(reviews_clas, bs=64, num_workers=0, device=device, path=ulmfit_dir)
print("train", len(dls_clas.train_ds), "test", len(dls_clas.valid_ds), "classes", list(dls_clas.vocab[1]))
*_, (xb_last, yb_last) = dls_clas.valid  # the last test batch: the loader is sorted, longest first, so these are the shortest
pad_id = dls_lm.vocab.index("xxpad")
print("last test batch:", tuple(xb_last.shape), "| real tokens in its first and last rows:",
      (xb_last != pad_id).sum(1)[[0, 1, -2, -1]].tolist())
print("its last row:", " ".join(dls_lm.vocab[i] for i in xb_last[-1].tolist()))

# %% [markdown]
# How fastai batches texts of different lengths (fastbook ch. 10 and 15):
#
# - **Padding**: a batch is a rectangle, so shorter texts are filled with `xxpad` (id 1). fastai's `Pad_Chunk` pads
#   to the batch's longest text in a way that suits BPT3C (below): whole `seq_len` windows of padding go in front,
#   the remainder at the end, so every text starts on a window boundary. Our texts are shorter than one window, so
#   all their padding is at the end (the last row above). The pooling layer masks padding out: "last hidden state"
#   means the state after the last real token.
# - **Length-sorted batches** (`SortedDL`): the training loader shuffles, then sorts chunks of 50 batches by length,
#   so each batch holds texts of similar length and little padding; the test loader is simply sorted, longest first.
#   Here most reviews reach the 48-token cut, so batches are nearly full anyway.
# - **BPT3C** (backpropagation through time for text classification): the encoder reads a long text in windows of
#   `seq_len` (72) tokens, carrying the LSTM state from window to window, and keeps gradients only for the windows
#   that feed the output (at most `max_len` = 72 × 20 tokens). Our 48-token texts fit in one window.
# - **Concat pooling**: the head sees [last hidden state, max over time, mean over time] of the final LSTM layer:
#   3 × 64 = 192 numbers, then BatchNorm, dropout, Linear(192, 50), ReLU, and a second block to 2 outputs.
#
# The classifier's encoder must have the language model's sizes (`awd_lstm_clas_config` with the same emb_sz,
# n_hid and n_layers) for `load_encoder` to fit. Gradual unfreezing trains the head alone for an epoch (the
# encoder is frozen after `load_encoder`), then the last LSTM layer too, with discriminative learning rates
# (`slice(lo, hi)`: lower for earlier layers, spread by 2.6 per group as in the book), then everything. For that last
# stage the book keeps discriminative rates; we try them and one rate for all layers, and let the validation split
# (below) choose. The same network from random weights gets the same number of epochs.
#
# One practical detail first. A fastai loader applies the whole item pipeline (read the column, tokenize, numericalize,
# categorize, truncate) to every item again in every epoch: right for image augmentation, wasted work for fixed
# texts, and for a model this small it was about 40% of the training time. So we run the pipeline once, keep the
# `(tokens, label)` pairs in lists, and give fastai loaders made with `dls_clas.train.new(dataset=...)`: the same
# batching, padding and length sorting, on ready items. `classifier_loaders` also takes a subset of the labels and a
# shorter cut, which exercise 05.13 uses.
#
# **A validation split.** Choosing anything (a schedule, a learning rate, when to stop) by its score on the test
# reviews would make the test score optimistic: the test set must be read once, at the end. So 400 of the 4,000
# labelled training reviews, drawn at random, become a *validation* split: no model trains on them, every per-epoch
# score and every choice below is made on them, and the other 3,600 are the labels the classifiers learn from.

# %%
clas_train_items = [(x, y) for x, y in dls_clas.train_ds]  # iterating a fastai Datasets runs its pipeline: once here
clas_test_items = [(x, y) for x, y in dls_clas.valid_ds]
clas_config = dict(awd_lstm_clas_config, **lm_info["config"])
valid_rows = np.sort(np.random.default_rng(ULMFIT_SEED).permutation(len(clas_train_items))[:400])
label_rows = np.setdiff1d(np.arange(len(clas_train_items)), valid_rows)  # the 3,600 whose labels train
print("labelled training reviews:", len(label_rows), "| validation:", len(valid_rows), "| test:", len(clas_test_items))


def classifier_loaders(n_labels=3600, seed=42, max_tokens=48):
    """(DataLoaders: n_labels training reviews + the 400 validation reviews; a loader of the 1,000 test reviews; rows).

    The rows are a seeded sample of the 3,600 label_rows (all of them for 3,600); each text keeps its first
    max_tokens tokens.
    """
    rows = np.sort(np.random.default_rng(seed).permutation(label_rows)[:n_labels])
    cut = lambda items: [(x[:max_tokens], y) for x, y in items]
    ready = dict(after_item=Pipeline([]))  # the items are already transformed
    train = dls_clas.train.new(dataset=cut(clas_train_items[i] for i in rows), **ready)
    valid = dls_clas.valid.new(dataset=cut(clas_train_items[i] for i in valid_rows), **ready)
    dls = DataLoaders(train, valid, path=ulmfit_dir, device=device)
    dls.vocab = dls_clas.vocab  # the learner reads the vocab (and so the number of classes) from here
    return dls, dls_clas.valid.new(dataset=cut(clas_test_items), **ready), rows


def new_classifier(dls, pretrained, seed=42):
    """An AWD-LSTM classifier on dls; its encoder from stage 2 (frozen) or random. Seeded before construction."""
    reseed(seed, dls.train)
    learn = text_classifier_learner(dls, AWD_LSTM, config=clas_config, pretrained=False, drop_mult=0.5,
                                    loss_func=CrossEntropyLossFlat(), metrics=accuracy, path=ulmfit_dir)
    return learn.load_encoder("reviews_encoder") if pretrained else learn


def fit_classifier(learn, pretrained, epochs=4, discriminative_last=False):
    """ULMFiT's gradual unfreezing (pretrained) or plain one-cycle training (scratch): the same number of epochs.

    The last stage of gradual unfreezing trains every layer at one rate, or with the book's discriminative rates.
    """
    with learn.no_bar(), learn.no_logging():
        if not pretrained:
            learn.fit_one_cycle(epochs, 1e-2)
            return learn
        learn.fit_one_cycle(1, 2e-2)  # the head only
        if epochs >= 4:
            learn.freeze_to(-2)  # + the last LSTM layer
            learn.fit_one_cycle(1, slice(1e-2 / 2.6**4, 1e-2))
        learn.unfreeze()  # everything
        learn.fit_one_cycle(epochs - (2 if epochs >= 4 else 1), slice(5e-3 / 2.6**4, 5e-3) if discriminative_last else 5e-3)
    return learn


def predict_great(learn, dl):
    """1 where the classifier says "great", else 0, for every text of dl in the dataset's order."""
    with learn.no_bar(), learn.no_logging():
        probs, _ = learn.get_preds(dl=dl)  # get_preds undoes the loader's length sorting
    return (probs.argmax(1) == dls_clas.vocab[1].o2i["great"]).long().numpy()


def train_classifier(n_labels, seed, pretrained, epochs=4, max_tokens=48, **schedule):
    """Train one classifier on n_labels reviews: (0/1 predictions on the 1,000 test reviews, 1 = "great"; learner)."""
    dls, test_dl, _ = classifier_loaders(n_labels, seed, max_tokens)
    learn = fit_classifier(new_classifier(dls, pretrained, seed), pretrained, epochs, **schedule)
    return predict_great(learn, test_dl), learn


def validation_accuracy(learn):
    with learn.no_bar(), learn.no_logging():
        return float(learn.validate()[1])  # [loss, accuracy] on the 400 validation reviews


# the last stage of ULMFiT, two ways; the validation split picks one, and only that one is scored on the test set
schedules = {"one rate": False, "discriminative (book)": True}
ulmfit_runs = {}
for name, discriminative in schedules.items():
    dls_run, test_dl, _ = classifier_loaders(3600, ULMFIT_SEED)
    learn = fit_classifier(new_classifier(dls_run, True, ULMFIT_SEED), True, discriminative_last=discriminative)
    ulmfit_runs[name] = (validation_accuracy(learn), learn)
chosen = max(ulmfit_runs, key=lambda name: ulmfit_runs[name][0])
learn_clas = ulmfit_runs[chosen][1]
scratch_preds, learn_scratch = train_classifier(3600, ULMFIT_SEED, pretrained=False)
y_test = (test_df["score"] == "great").to_numpy().astype(int)
clas_pred = {"ULMFiT": predict_great(learn_clas, test_dl), "LSTM from scratch": scratch_preds}
head_linear = learn_clas.model[1].layers[0][2]
print("the head's first Linear layer:", head_linear.in_features, "->", head_linear.out_features, "features")

# %% [markdown]
# The last line shows concat pooling's 192 = 3 × 64 inputs. Now the baselines, on the same split and on exactly the
# same input: the first 48 tokens of each review, as fastai's tokenizer produced them.
#
# - **Majority class**: always say "great". The test set has 658 great reviews of 1,000.
# - **Bag of words**: TF-IDF of unigrams and bigrams (`min_df=2`, sublinear term frequency), then a logistic
#   regression (`C=3`). It ignores word order entirely.
#
# Both learn from the same 3,600 labelled reviews as the LSTMs; the from-scratch LSTM above already got the same four
# epochs as ULMFiT.

# %%
def tokens_as_text(ds, n=48):
    """The first n fastai tokens of every text of a classifier dataset, joined by spaces (its tokenized column)."""
    return [" ".join(toks[:n]) for toks in ds.items["text"]]


def bow_fit_predict(train_texts, train_labels, test_texts):
    """TF-IDF uni+bigrams -> logistic regression; 0/1 predictions ("great" = 1) for the test texts."""
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, token_pattern=r"\S+", lowercase=False)
    model = LogisticRegression(C=3, max_iter=2000).fit(vec.fit_transform(train_texts), train_labels)
    return (model.predict(vec.transform(test_texts)) == "great").astype(int)


bow_train, bow_test = tokens_as_text(dls_clas.train_ds), tokens_as_text(dls_clas.valid_ds)
labels_train = dls_clas.train_ds.items["label"].to_numpy()
clas_pred["bag of words + LR"] = bow_fit_predict([bow_train[i] for i in label_rows], labels_train[label_rows], bow_test)
clas_pred["majority class"] = np.ones(len(y_test), dtype=int)
clas_acc = {name: float((p == y_test).mean()) for name, p in clas_pred.items()}
print("majority class accuracy:", clas_acc["majority class"])

# %% tags=["nbval-ignore-output"]
for name, (acc, _) in ulmfit_runs.items():
    print(f"ULMFiT's last stage with {name:>21}: validation accuracy {acc:.3f}")
print("chosen on the validation split:", chosen)
print("test accuracy, read once:")
for name in ("bag of words + LR", "LSTM from scratch", "ULMFiT", "majority class"):
    print(f"{name:>18}: {clas_acc[name]:.2f}")

# %%
# sweep: classifiers: bag of words accuracy 0.767..0.776 over 6 runs; claim >= 0.74
print("claim: BoW LR >= 0.74:", clas_acc["bag of words + LR"] >= 0.74)
# sweep: classifiers: ULMFiT - majority 0.081..0.103 over 6 runs; claim >= 0.03
print("claim: ULMFiT >= majority + 0.03:", clas_acc["ULMFiT"] >= clas_acc["majority class"] + 0.03)
# sweep: classifiers: scratch LSTM - majority 0.084..0.105 over 6 runs; claim >= 0.03
print("claim: LSTM from scratch >= majority + 0.03:", clas_acc["LSTM from scratch"] >= clas_acc["majority class"] + 0.03)
fig, ax = plt.subplots(figsize=(5.5, 2.8))
bar_names = ["bag of words + LR", "LSTM from scratch", "ULMFiT"]
bars = ax.barh(bar_names, [clas_acc[n] for n in bar_names], color=["#4c78a8", "#f58518", "#54a24b"])
ax.bar_label(bars, fmt="%.2f", padding=3)
ax.axvline(clas_acc["majority class"], color="k", ls="--", label="majority class (0.658)")
ax.set(xlim=(0.5, 0.9), xlabel="test accuracy (1,000 reviews; 0.5 = a coin flip)",
       title="3,600 labels, 48 tokens per review, one seed")
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), frameon=False)
plt.show()

# %% [markdown]
# **The honest result.** The bars are one seed. Over the six runs of the seed sweep (`sweeps/05_nlp.results.md`, each
# with its own validation split and label draws) the bag of words scored 0.767–0.776, ULMFiT 0.739–0.761 and the
# LSTM from scratch 0.742–0.763. The bag of words wins (in every run of the sweep, by one to two points over the
# better LSTM), and ULMFiT, the method this section built, lands within a point or two of the same network trained
# from scratch, on either side depending on the seed and the device (exercise 05.13 repeats the comparison with
# 250, 1,000 and 3,600 labels). Transfer did happen, but at the language-model level: stage 2 cut the review
# perplexity to less than half. It did not turn into better sentiment, because at this scale:
#
# - ULMFiT's gains came from 103 million tokens of general text, 50,000 *extra* unlabelled in-domain reviews and hours
#   of GPU. Ours: 0.36 million tokens of 1810s prose, no review text beyond the labelled 4,000, a 64-dimensional model
#   and seconds of CPU. An encoder this small, trained this briefly, knows grammar, not opinions.
# - Sentiment in short product reviews is mostly carried by words ("delicious", "stale", "disappointed", "five
#   stars"), which is exactly what a bag of words sees, with a weight for every unigram and bigram, learnt in a
#   second.
#   Word order rarely matters for "great or not".
# - The book's cautious schedule protects what stage 1 learnt. Here that knowledge is worth little: with
#   `slice(lr/2.6**4, lr)` in the last stage the embedding layer barely moves in two epochs, and the validation split
#   preferred one rate for all layers in every run of the sweep (by 2.5 to 10 points of validation accuracy).
#
# With the online flag and a GPU you can rerun the real thing: `language_model_learner(dls_lm, AWD_LSTM,
# pretrained=True)` downloads the WikiText-103 weights (the full 400/1152/3 AWD-LSTM), and IMDb (`URLs.IMDB`) gives
# 25,000 labelled and 50,000 unlabelled reviews; fastbook reports about 94% there, well above bag-of-words baselines.
# Whether a method wins depends on the data, the budget and the baseline: always run the baseline.
#
# ### A probe: what does the encoder know about sentiment?
#
# Stage 2 made the encoder a much better *language model* of reviews. Did it also learn features that a classifier
# can use? A **probe** asks this without any fine-tuning: freeze the encoder, read its features, and train only a
# linear head on them. If the features carry sentiment, the probe beats the majority guess; the same probe on an
# encoder with random weights (same architecture, never trained) says how much of that is due to pretraining rather
# than to the architecture and the pooling alone.
#
# The features are concat pooling written out by hand: the top LSTM layer's output after each review's last real
# token, its maximum and its mean over the real tokens (192 numbers, what fastai's head reads). The head is a logistic
# regression on the standardized features, trained on 1,000 labelled reviews (three draws from the 3,600) and scored
# on the validation split; the random encoder is drawn three times too. Nothing here reads the test set.

# %%
def encoder_features(encoder, items, max_tokens=48, bs=64):
    """Concat pooling by hand: [last, max, mean] of the encoder's top-layer outputs over each text's real tokens."""
    encoder.eval()
    feats = []
    with torch.no_grad():
        for k in range(0, len(items), bs):
            texts = [x[:max_tokens] for x, _ in items[k:k + bs]]
            lengths = torch.tensor([len(x) for x in texts])
            xb = torch.full((len(texts), int(lengths.max())), pad_id)
            for i, x in enumerate(texts):
                xb[i, :len(x)] = x  # padding at the end: the states of the real tokens never see it
            encoder.reset()  # a fresh state for every batch of texts
            out = encoder(xb)  # (bs, seq, emb_sz)
            real = (torch.arange(xb.shape[1])[None] < lengths[:, None])[..., None]
            last = out[torch.arange(len(texts)), lengths - 1]
            top = out.masked_fill(~real, -float("inf")).max(1).values
            mean = (out * real).sum(1) / lengths[:, None]
            feats.append(torch.cat([last, top, mean], 1))
    return torch.cat(feats).numpy()


def probe_accuracy(features, rows):
    """A linear head on frozen features: fit on the training rows, accuracy on the validation split."""
    head = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
    head.fit(features[rows], great_train[rows])
    return head.score(features[valid_rows], great_train[valid_rows])


great_train = (labels_train == "great").astype(int)
encoder_sizes = {k: clas_config[k] for k in ("emb_sz", "n_hid", "n_layers", "pad_token")}
pretrained_encoder = AWD_LSTM(len(dls_lm.vocab), **encoder_sizes)  # on the CPU, loaded from the file stage 3 loads
pretrained_encoder.load_state_dict(torch.load(ulmfit_dir / "models" / "reviews_encoder.pth", map_location="cpu",
                                              weights_only=True))
pretrained_features = encoder_features(pretrained_encoder, clas_train_items)
probe = {"pretrained": [], "random": []}
for k in range(3):
    set_seed(ULMFIT_SEED + k, reproducible=True)
    random_features = encoder_features(AWD_LSTM(len(dls_lm.vocab), **encoder_sizes), clas_train_items)
    rows = np.random.default_rng(ULMFIT_SEED + k).permutation(label_rows)[:1000]
    probe["pretrained"].append(probe_accuracy(pretrained_features, rows))
    probe["random"].append(probe_accuracy(random_features, rows))
valid_majority = max(great_train[valid_rows].mean(), 1 - great_train[valid_rows].mean())
print("features per review:", pretrained_features.shape[1], "(last, max and mean of", encoder_sizes["emb_sz"], "outputs)")

# %% tags=["nbval-ignore-output"]
for name, accs in probe.items():
    print(f"probe on the {name:>10} encoder: validation accuracy {np.mean(accs):.3f} (draws {min(accs):.3f}-{max(accs):.3f})")
print(f"majority guess on the validation split: {valid_majority:.3f}")

# %% [markdown]
# Read the three numbers together. Over the six runs of the seed sweep the pretrained encoder's probe came out ahead
# of the random encoders' every time, but only by 1.1 to 2.5 points, and both probes sat within five points of the
# majority guess, sometimes below it (pretrained −0.017 to +0.049, random −0.042 to +0.025). A gap that small,
# measured on 400 validation reviews, is not one we can promise on every machine, so the cell above claims nothing.
# A larger measurement, made while writing this section, agrees: a 5-fold cross-validated probe on all 4,000 training
# reviews scored 0.676 on the pretrained encoder and 0.652 to 0.683 (mean 0.668) on eight random ones, against a
# majority of 0.650: the pretrained encoder sits inside the range of random encoders. The diagnosis behind this
# honest result: a 64-dimensional encoder that saw 0.36 million words of Austen and 4,000 short reviews (the 400
# validation reviews' texts among them, without their labels) learnt to predict the next word, and next-word features
# carry little sentiment at this scale. The classifiers reach 0.75 because fine-tuning changes the encoder itself; the bag of
# words, whose features *are* the words, gets further with a linear head. Exercise 05.13 measures how this plays out
# as the number of labels changes.
#
# ### Sampling explorer
#
# The fine-tuned review LM, live: type a prompt, move the temperature, choose how many tokens to write. The bars
# are the model's next-token probabilities at that temperature (the top 10, `xxunk` excluded as `predict` does);
# T = 1 is the model's own distribution, T < 1 sharpens it towards the argmax, T > 1 flattens it. The title is
# one sampled continuation, drawn with a fixed seed.

# %%
def next_token_probs(learn, prompt, temperature=1.0):
    """softmax(logits / T) of the LM's next token after `prompt` (xxunk removed), on the CPU."""
    ids = learn.dls.test_dl([prompt]).items[0]
    model = learn.model.eval()
    model.reset()
    with torch.no_grad():
        logits = model(ids[None].to(learn.dls.device))[0][0, -1].float().cpu()
    logits[learn.dls.vocab.index("xxunk")] = -float("inf")
    return F.softmax(logits / temperature, dim=0)


def draw_sampler(prompt="this coffee is", temperature=0.75, n_words=12, learn=learn_lm):
    """Top-10 next-token probabilities at `temperature`, titled with one seeded continuation of `prompt`."""
    probs = next_token_probs(learn, prompt, temperature)
    top = probs.topk(10)
    with torch.random.fork_rng(devices=[]):  # a fixed sample that leaves the notebook's random state alone
        torch.manual_seed(0)
        with learn.no_bar(), learn.no_logging():
            text = learn.predict(prompt, n_words, temperature=temperature, no_bar=True)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    words = [learn.dls.vocab[i] for i in top.indices.tolist()]
    ax.barh(words[::-1], top.values.tolist()[::-1], color="#54a24b")
    ax.set(xlim=(0, 1), xlabel=f"probability of the next token at T = {temperature:.2f}")
    ax.set_title("\n".join(textwrap.wrap(text, 70)), fontsize=9, loc="left")
    plt.show()


draw_sampler("this coffee is", temperature=0.75, n_words=12)

# %% tags=["nbval-ignore-output"]
import ipywidgets as widgets

from course_utils.plots import explorer

explorer(draw_sampler,
         prompt=widgets.Text("this coffee is", description="prompt"),
         temperature=widgets.FloatSlider(0.75, min=0.1, max=2.0, step=0.05, description="temperature"),
         n_words=widgets.IntSlider(12, min=1, max=40, description="tokens"))

# %% [markdown]
# ## 7. Ethics: generated text
#
# The sampler above runs on a CPU, learnt from 4,000 reviews in seconds, and its sentences are already
# review-shaped. Scale it up and generated text becomes cheap, fluent and hard to tell from people's:
#
# - **The FCC net-neutrality comments** (2017): of more than 22 million public comments, fewer than 800,000 were
#   estimated to be unique; millions came from templates with words swapped in, many under stolen names. Analysts
#   found the campaigns by their templates; a language model writes a new sentence every time.
# - **Sock puppets**: invented people with generated profile pictures and plausible posts can push an opinion, fake a
#   consensus or flood a review site. Our review LM is a toy version of a fake-review generator.
# - **An arms race**: a classifier can be trained to spot generated text, and the generator can then be trained to
#   fool it (that is how GANs work). Detection is always one step behind and never certain, and at the scale of
#   millions of posts even a 1% false-positive rate silences many real people. Signatures, provenance and limits on
#   automated accounts matter as much as detectors.
#
# Questions worth asking of any text generator you build: who could use it to impersonate whom; can its output be
# marked or traced; and what happens when it is wrong at the temperature someone chooses.
#
# ## Summary
#
# - **Tokens**: text becomes tokens (word, subword or character), fastai's rules add markers (`xxbos`, `xxmaj`,
#   `xxup`, `xxrep`), `Numericalize` maps them to ids with a capped vocabulary. The spaCy blank tokenizer and
#   sentencepiece training work offline; tokenizer models that must be downloaded do not.
# - **Batches**: a language model reads one stream cut into `bs` contiguous rows and `seq_len` windows; the target is
#   the input shifted by one token. Documents are shuffled each epoch, tokens never.
# - **Cells**: an RNN is one cell applied in a loop; backpropagation through time sums each weight's gradient over
#   the steps. LSTM and GRU gates keep gradients alive over distance; PyTorch's GRU applies the reset gate after the
#   hidden matmul, unlike the original paper.
# - **The ladder** (HUMAN_NUMBERS): shared weights, a loop, kept state with truncated BPTT, a target at every step,
#   depth, gating, then AWD-LSTM regularization (dropout, AR/TAR, weight tying) took accuracy from about 0.49 to
#   0.85–0.91, against a 0.15 baseline.
# - **ULMFiT**, staged offline: a general LM (Austen, cached), fine-tuned on reviews, then a classifier with gradual
#   unfreezing. Transfer showed clearly at the language-model level (review perplexity less than half of scratch's).
# - **The honest finding**: with 3,600 labelled short reviews a bag-of-words logistic regression beats both LSTM
#   classifiers, and the transferred one is no better than scratch; a probe shows why (the frozen encoder's features
#   carry little sentiment). Choices are made on a validation split, the test set is read once. Transfer pays when the pretraining corpus and model are large and
#   the labelled set is small and hard; always measure it against the simplest baseline.

# %% [markdown]
# ## Exercises
#
# Each exercise ends with a `check(...)` line: ✅ when your answer is right, ❌ and a hint when it is not. The checks
# run your code on their own hidden inputs (their own seeds: your notebook's random state is not touched) and compare
# with a reference: fastai's rules and loaders, `torch.nn`'s cells, sklearn. Every exercise cell imports what it needs,
# so you can do them in any order.

# %% [markdown]
# ### Exercise 05.1 · Tokenizer rules (difficulty 1, about 10 minutes)
#
# Write four of fastai's tokenizer rules (§1). Two are *string* rules, run on the raw text before it is split, and
# return a string:
#
# - `replace_rep(t)`: a non-space character repeated 3 or more times becomes `xxrep`, the count and the character:
#   `"cooool!!!"` → `"c xxrep 4 o l xxrep 3 ! "`.
# - `replace_wrep(t)`: a word repeated 3 or more times in a row becomes `xxwrep`, the count and the word:
#   `"this is very very very good"` → `"this is xxwrep 3 very good"`. Case-sensitive, and only whole words repeat:
#   `"go go goal"` is left alone. fastai's regex is `(?:\s|^)(\w+)\s+((?:\1\s+)+)\1(\s|\W|$)`: group 2 holds the
#   middle repetitions, group 3 the character after the last one (keep it).
#
# Two are written here as rules on a list of tokens, so that you can test them word by word (fastai 2 runs its own
# versions as string rules, with regexes, before spaCy; fastai 1 ran them on tokens):
#
# - `replace_all_caps(tokens)`: a token that starts with a capital A–Z and has no lowercase a–z (`"LOVE"`, `"U.S."`,
#   `"A+"`) is lowercased, with `"xxup"` inserted before it when it is longer than one character:
#   `["I", "LOVE", "it"]` → `["i", "xxup", "love", "it"]`.
# - `replace_maj(tokens)`: a token that starts with A–Z and has no other A–Z (`"The"`, `"I'm"`) is lowercased, with
#   `"xxmaj"` before it when it is longer than one character; `"McDonald"` and `"U.S."` stay as they are.
#
# The check compares your output with fastai's (`fastai.text.core`) token by token on 12 hidden strings, so extra
# spaces don't matter. `re.sub` with a function as the replacement does most of the work.

# %%
import re


def replace_rep(t):
    # BEGIN SOLUTION
    return re.sub(r"(\S)(\1{2,})", lambda m: f" xxrep {len(m.group(2)) + 1} {m.group(1)} ", t)
    # END SOLUTION


def replace_wrep(t):
    # BEGIN SOLUTION
    pattern = r"(?:\s|^)(\w+)\s+((?:\1\s+)+)\1(\s|\W|$)"
    return re.sub(pattern, lambda m: f" xxwrep {len(m.group(2).split()) + 2} {m.group(1)} {m.group(3)}", t)
    # END SOLUTION


def replace_all_caps(tokens):
    # BEGIN SOLUTION
    out = []
    for tok in tokens:
        if re.fullmatch(r"[A-Z]+[^a-z]*", tok):
            out += ["xxup", tok.lower()] if len(tok) > 1 else [tok.lower()]
        else:
            out.append(tok)
    return out
    # END SOLUTION


def replace_maj(tokens):
    # BEGIN SOLUTION
    out = []
    for tok in tokens:
        if re.fullmatch(r"[A-Z][^A-Z]*", tok):
            out += ["xxmaj", tok.lower()] if len(tok) > 1 else [tok.lower()]
        else:
            out.append(tok)
    return out
    # END SOLUTION

# %%
check("05.1", replace_rep, replace_wrep, replace_maj, replace_all_caps)

# %% [markdown]
# ### Exercise 05.2 · Predict the LM batches (difficulty 1, about 10 minutes)
#
# Without running anything, predict what fastai's `LMDataLoader([torch.arange(90)], bs=6, seq_len=5, shuffle=False)`
# yields (§2): the first batch's inputs `first_x` and targets `first_y`, both (6, 5), and the number of batches
# `n_batches`. Write them as tensors or nested lists. Careful: the targets are the inputs shifted by one token, so the
# very last target needs a token *after* the last input. How long does that make each of the 6 sub-streams?

# %%
first_x = ...  # predict it: 6 rows of 5 token ids
first_y = ...  # predict it
n_batches = ...  # predict it
# BEGIN SOLUTION
first_x = torch.arange(6)[:, None] * 14 + torch.arange(5)  # 89 usable tokens -> 84 = 6 sub-streams of 14
first_y = first_x + 1
n_batches = 3  # windows 0-4, 5-9 and a short one 10-13
# END SOLUTION

# %%
check("05.2", first_x, first_y, n_batches)

# %% [markdown]
# ### Exercise 05.3 · `lm_batches` (difficulty 2, about 20 minutes)
#
# Write `lm_batches(nums, bs, seq_len)` for a 1-D LongTensor `nums`: a list of `(x, y)` pairs, each `(bs, seq_len)`
# except a shorter last one, equal to the batches of `LMDataLoader([nums], bs=bs, seq_len=seq_len, shuffle=False)`.
# Cut the stream into `bs` contiguous sub-streams of equal length, keeping one token in reserve for the last target
# and dropping the rest of the tail; then walk along them in windows of `seq_len`; `y` is `x` shifted by one. The check
# uses hidden streams whose lengths are not multiples of `bs * seq_len`.

# %%
def lm_batches(nums, bs, seq_len):
    # BEGIN SOLUTION
    n = (len(nums) - 1) // bs  # tokens per sub-stream
    x = nums[: n * bs].view(bs, n)
    y = nums[1: n * bs + 1].view(bs, n)
    return [(x[:, i:i + seq_len], y[:, i:i + seq_len]) for i in range(0, n, seq_len)]
    # END SOLUTION

# %%
check("05.3", lm_batches)

# %% [markdown]
# ### Exercise 05.4 · RNN forward and backpropagation through time (difficulty 2, about 25 minutes)
#
# In NumPy (float64), for the vanilla cell of §3, write
#
# - `rnn_forward(x, h0, W, b, V, c)` → `(hs, ys)`: x is (T, B, n_in), h0 (B, nh), W (n_in + nh, nh) acting on the
#   concatenation `[x_t, h]`, b (nh,), V (nh, n_out), c (n_out,). Each step computes
#   `h_t = tanh(concat([x_t, h_{t-1}], 1) @ W + b)`; `hs` stacks the T states (T, B, nh) and `ys = hs @ V + c`.
# - `rnn_backward(x, h0, W, b, V, c)` → `(dW, db, dV, dc, dh0)`, the gradients of `loss = ys.sum()`.
#
# Walk back from the last step: the gradient reaching h_t comes from its own output (`V.sum(1)` per row) *plus* from
# step t + 1; go through the tanh (`1 - h_t**2`), then *add* this step's share to dW and db, and pass
# `da_t @ W[n_in:].T` back to h_{t-1}. The check compares with torch autograd to 1e-8 on 3 hidden shapes.

# %%
def rnn_forward(x, h0, W, b, V, c):
    # BEGIN SOLUTION
    h, hs = h0, []
    for x_t in x:
        h = np.tanh(np.concatenate([x_t, h], 1) @ W + b)
        hs.append(h)
    hs = np.stack(hs)
    return hs, hs @ V + c
    # END SOLUTION


def rnn_backward(x, h0, W, b, V, c):
    # BEGIN SOLUTION
    hs, ys = rnn_forward(x, h0, W, b, V, c)
    T, B, n_in = x.shape
    dys = np.ones_like(ys)
    dV = np.einsum("tbh,tbo->ho", hs, dys)
    dc = dys.sum((0, 1))
    dW, db = np.zeros_like(W), np.zeros_like(b)
    dh = np.zeros_like(h0)
    for t in reversed(range(T)):
        dh = dh + dys[t] @ V.T
        da = dh * (1 - hs[t] ** 2)
        h_prev = hs[t - 1] if t > 0 else h0
        dW += np.concatenate([x[t], h_prev], 1).T @ da
        db += da.sum(0)
        dh = da @ W[n_in:].T
    return dW, db, dV, dc, dh
    # END SOLUTION

# %%
check("05.4", rnn_forward, rnn_backward)

# %% [markdown]
# ### Exercise 05.5 · LSTM and GRU cells in NumPy (difficulty 2, about 20 minutes)
#
# Write one step of each cell in NumPy with PyTorch's parameter layout (§3), for x (B, n_in) and h, c (B, nh):
#
# - `lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh)` → `(h_new, c_new)`, with W_ih (4·nh, n_in), W_hh (4·nh, nh) and
#   biases (4·nh,). `gates = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh` splits into i, f, g, o (in that order);
#   `c_new = σ(f)·c + σ(i)·tanh(g)`, `h_new = σ(o)·tanh(c_new)`.
# - `gru_cell(x, h, W_ih, W_hh, b_ih, b_hh)` → `h_new`, with (3·nh, ·) weights in the order r, z, n and PyTorch's
#   form `n = tanh(W_in x + b_in + r·(W_hn h + b_hn))`, `h_new = (1 − z)·n + z·h`.
#
# The check copies the weights of `nn.LSTMCell` and `nn.GRUCell` (float64) and needs a match to 1e-10. The GRU form
# of Cho et al. (and Weidman), which multiplies h by r *before* the matmul, is a different function and fails.

# %%
def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def lstm_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    # BEGIN SOLUTION
    i, f, g, o = np.split(x @ W_ih.T + b_ih + h @ W_hh.T + b_hh, 4, axis=1)
    c_new = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c_new), c_new
    # END SOLUTION


def gru_cell(x, h, W_ih, W_hh, b_ih, b_hh):
    # BEGIN SOLUTION
    x_r, x_z, x_n = np.split(x @ W_ih.T + b_ih, 3, axis=1)
    h_r, h_z, h_n = np.split(h @ W_hh.T + b_hh, 3, axis=1)
    r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z)
    n = np.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h
    # END SOLUTION

# %%
check("05.5", lstm_cell, gru_cell)

# %% [markdown]
# ### Exercise 05.6 · `group_chunks` (difficulty 2, about 15 minutes)
#
# A stateful model (`LMModel3` in §4) carries its hidden state from one batch to the next, so row i of batch k + 1 must
# continue row i of batch k. Write fastbook's `group_chunks(ds, bs)`: cut the dataset into `bs` streams of
# `m = len(ds) // bs` consecutive items (the last `len(ds) % bs` items are dropped) and return one list in which
# batch k (items `k·bs … k·bs + bs − 1`) holds item k of each stream. The result has `bs · m` items.

# %%
def group_chunks(ds, bs):
    # BEGIN SOLUTION
    m = len(ds) // bs
    return [ds[i + m * j] for i in range(m) for j in range(bs)]
    # END SOLUTION

# %%
check("05.6", group_chunks)

# %% [markdown]
# ### Exercise 05.7 · Dropout from scratch (difficulty 1, about 10 minutes)
#
# Write `Dropout(p)` as an `nn.Module` (§4): in training mode, zero each element with probability p using
# `bernoulli_` on a new mask and scale the survivors by 1/(1 − p) ("inverted" dropout, so the mean is unchanged and
# evaluation needs no rescaling); in eval mode (`self.training` is False) return the input unchanged. Don't modify the
# input in place. The check draws a million elements.

# %%
class Dropout(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        # BEGIN SOLUTION
        if not self.training:
            return x
        mask = x.new_empty(x.shape).bernoulli_(1 - self.p)
        return x * mask.div_(1 - self.p)
        # END SOLUTION

# %%
check("05.7", Dropout)

# %% [markdown]
# ### Exercise 05.8 · AR and TAR (difficulty 1, about 10 minutes)
#
# Write `ar_tar_penalty(raw, dropped, alpha, beta)`: the term fastai's `RNNRegularizer` adds to the loss (§4).
# `raw` and `dropped` are the last LSTM layer's outputs (bs, sl, nh) before and after dropout. Activation
# regularization (AR) penalizes large *dropped-out* activations with `alpha` times their mean square; temporal
# activation regularization (TAR) penalizes changes between consecutive time steps of the *raw* outputs with `beta`
# times the mean square of the differences. Return a tensor (autograd must reach both inputs).

# %%
def ar_tar_penalty(raw, dropped, alpha, beta):
    # BEGIN SOLUTION
    ar = dropped.pow(2).mean()
    tar = (raw[:, 1:] - raw[:, :-1]).pow(2).mean()
    return alpha * ar + beta * tar
    # END SOLUTION

# %%
check("05.8", ar_tar_penalty)

# %% [markdown]
# ### Exercise 05.9 · The next word from two, without shared weights (difficulty 2, about 15 minutes)
#
# `LMModel1` (§4) reads its words one at a time through one shared layer `h_h`, and the order of the steps is how
# it knows which word came first. The first neural language model (Bengio et al., 2003) did it the other way: each
# *position* gets its own weights. Put the embeddings of the previous words side by side in one vector, so that the
# first word's numbers and the second word's numbers meet different weights of the hidden layer, then a
# nonlinearity and the output layer.
#
# Write `make_model()`, returning a fresh `nn.Module` of that design that maps a (bs, 2) int64 batch of
# HUMAN_NUMBERS token ids (vocab of 30, §4) to (bs, 30) logits for the word that follows. The check builds its own
# data (every pair of consecutive words and the word that follows, a random 80/20 split), trains your model for one
# epoch (Adam, lr 3e-3, batch size 128, fixed seed) and needs a validation accuracy of at least the
# most-common-word baseline + 0.2. A model that looks only at the last word stays near 0.2. Keep it under a million
# parameters. Before you run it: how many weights does the first layer of your design have, and how would that
# number grow with 10 previous words instead of 2, compared with `LMModel1`'s?

# %%
# BEGIN SOLUTION
class PositionalConcat(nn.Module):
    def __init__(self, vocab_sz=30, emb_sz=32, n_hidden=64, n_words=2):
        super().__init__()
        self.emb = nn.Embedding(vocab_sz, emb_sz)
        self.hidden = nn.Linear(n_words * emb_sz, n_hidden)  # one block of weights per position
        self.out = nn.Linear(n_hidden, vocab_sz)

    def forward(self, x):
        side_by_side = self.emb(x).flatten(1)  # (bs, 2, emb_sz) -> (bs, 2 * emb_sz)
        return self.out(torch.relu(self.hidden(side_by_side)))
# END SOLUTION


def make_model():
    # BEGIN SOLUTION
    return PositionalConcat()
    # END SOLUTION

# %%
check("05.9", make_model)

# %% [markdown]
# ### Exercise 05.10 · A GRU cell in a language model (difficulty 2, about 20 minutes)
#
# Write `GRUCellScratch(ni, nh)` with two layers named as in `nn.GRU`'s layout, `self.ih = nn.Linear(ni, 3*nh)` and
# `self.hh = nn.Linear(nh, 3*nh)`, whose `forward(x, h)` returns the new state: chunk `ih(x)` and `hh(h)` into r, z, n
# and use PyTorch's form `n = tanh(i_n + r·h_n)`, `h_new = (1 − z)·n + z·h`.
#
# Then write `LMModelGRU(vocab_sz, n_hidden)` in the style of `LMModel3`/`LMModel4` (§4): `self.i_h` an embedding,
# `self.cell = GRUCellScratch(n_hidden, n_hidden)`, `self.h_o` a linear output layer and the state `self.h` (0 or a
# (bs, n_hidden) tensor of zeros after `reset()`). `forward(x)` takes (bs, sl) token ids, runs the cell over the sl
# steps starting from `self.h`, returns the logits of every step (bs, sl, vocab_sz) and keeps the last state,
# *detached*, in `self.h`. The check copies your weights into `nn.GRU` and compares 3 consecutive batches of 16 steps
# (1e-5). Tip: `self.h + torch.zeros(bs, n_hidden)` turns a 0 state into a tensor of the right shape.

# %%
class GRUCellScratch(nn.Module):
    def __init__(self, ni, nh):
        super().__init__()
        # BEGIN SOLUTION
        self.ih = nn.Linear(ni, 3 * nh)
        self.hh = nn.Linear(nh, 3 * nh)
        # END SOLUTION

    def forward(self, x, h):
        # BEGIN SOLUTION
        x_r, x_z, x_n = self.ih(x).chunk(3, 1)
        h_r, h_z, h_n = self.hh(h).chunk(3, 1)
        r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        return (1 - z) * n + z * h
        # END SOLUTION


class LMModelGRU(nn.Module):
    def __init__(self, vocab_sz, n_hidden):
        super().__init__()
        # BEGIN SOLUTION
        self.i_h = nn.Embedding(vocab_sz, n_hidden)
        self.cell = GRUCellScratch(n_hidden, n_hidden)
        self.h_o = nn.Linear(n_hidden, vocab_sz)
        self.h = 0
        # END SOLUTION

    def forward(self, x):
        # BEGIN SOLUTION
        h = self.h + torch.zeros(x.shape[0], self.h_o.in_features, device=x.device)
        outs = []
        for i in range(x.shape[1]):
            h = self.cell(self.i_h(x[:, i]), h)
            outs.append(self.h_o(h))
        self.h = h.detach()
        return torch.stack(outs, dim=1)
        # END SOLUTION

    def reset(self):
        # BEGIN SOLUTION
        self.h = 0
        # END SOLUTION

# %%
check("05.10", GRUCellScratch, LMModelGRU)

# %% [markdown]
# ### Exercise 05.11 · Sampling with a temperature (difficulty 1, about 10 minutes)
#
# Write `sample_next(logits, temperature, generator)` returning the next token id as an `int` for a 1-D tensor of
# logits (§6): at temperature 0 the most likely token (argmax); otherwise draw from `softmax(logits / temperature)`
# with `torch.multinomial(..., 1, generator=generator)`, so the same generator state gives the same draw. Low
# temperatures sharpen the distribution (safe, repetitive text), high ones flatten it (varied, then nonsense): the
# check also measures the entropy of your samples at three temperatures.

# %%
def sample_next(logits, temperature, generator):
    # BEGIN SOLUTION
    if temperature == 0:
        return int(logits.argmax())
    probs = F.softmax(logits / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))
    # END SOLUTION

# %%
check("05.11", sample_next)

# %% [markdown]
# ### Exercise 05.12 · Bag of words from scratch (difficulty 2, about 20 minutes)
#
# The strongest baseline of §6 is a linear model on word counts. Write
#
# - `bow_matrix(token_lists, vocab)`: a (n_docs, len(vocab)) float array (or tensor) whose entry [i, j] counts how
#   often `vocab[j]` occurs in document i (a list of tokens); words outside the vocabulary are ignored. It must equal
#   sklearn's `CountVectorizer(vocabulary=vocab)` on already-tokenized documents.
# - `fit_bow_logreg(X, y)`: a logistic regression in torch, trained on a float tensor of counts X (n, n_words) and
#   int64 labels y (1 = "great"), returned as an `nn.Module` that maps counts to (n, 2) logits.
#
# The check builds its own 2,000-word vocabulary from the 4,000 training reviews, refits your model and needs at
# least 0.74 accuracy on the 1,000 test reviews (majority: 0.66). Full-batch Adam for a few dozen steps is enough;
# keep it under a few seconds.

# %%
def bow_matrix(token_lists, vocab):
    # BEGIN SOLUTION
    index = {w: j for j, w in enumerate(vocab)}
    X = np.zeros((len(token_lists), len(vocab)), dtype=np.float32)
    for i, doc in enumerate(token_lists):
        for w in doc:
            if w in index:
                X[i, index[w]] += 1
    return X
    # END SOLUTION


def fit_bow_logreg(X, y):
    # BEGIN SOLUTION
    model = nn.Linear(X.shape[1], 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(50):
        loss = F.cross_entropy(model(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model
    # END SOLUTION

# %%
check("05.12", bow_matrix, fit_bow_logreg)

# %% [markdown]
# ### Exercise 05.13 · How many labels does transfer need? (difficulty 3, about 30 minutes)
#
# Experiment and report: bag of words (`"bow"`), the LSTM classifier from scratch (`"scratch"`) and ULMFiT
# (`"ulmfit"`) with 250, 1,000 and 3,600 labelled training reviews (the 400 of the validation split stay out), at
# least two seeds each, scored on the 1,000 test reviews. Nothing is tuned here, so the test set is read only to
# report. Say which method wins at each size.
#
# Use the helpers of §6: `train_classifier(n_labels, seed, pretrained, epochs, max_tokens)` returns a model's 0/1
# predictions on the test reviews ("great" = 1, in test order) and the learner; `classifier_loaders(n_labels, seed,
# max_tokens)[2]` are the training rows it used; `tokens_as_text` and `bow_fit_predict` give the bag of words the same
# tokens; `y_test` holds the answers. Keep it cheap: 2 epochs and the first 16 tokens for every model (12 LSTM
# trainings of a few seconds each), and the same 16 tokens for the bag of words.
#
# Build `report = {"predictions": {(method, n_labels, seed): 0/1 array}, "accuracy": {same keys: float},
# "winner": {n_labels: method}}`, the winner being the method with the highest mean accuracy over seeds. Before you
# run it: which method do you expect to gain most from more labels?

# %% tags=["nbval-ignore-output"]
report = ...  # fill in the predictions, accuracies and winners
# BEGIN SOLUTION
quick = dict(epochs=2, max_tokens=16)
bow_train_q, bow_test_q = tokens_as_text(dls_clas.train_ds, 16), tokens_as_text(dls_clas.valid_ds, 16)
predictions = {}
for n_labels in (250, 1000, 3600):
    for seed in (1, 2):
        rows = classifier_loaders(n_labels, seed, 16)[2]
        bow_texts = [bow_train_q[i] for i in rows]
        predictions["bow", n_labels, seed] = bow_fit_predict(bow_texts, labels_train[rows], bow_test_q)
        predictions["scratch", n_labels, seed] = train_classifier(n_labels, seed, pretrained=False, **quick)[0]
        predictions["ulmfit", n_labels, seed] = train_classifier(n_labels, seed, pretrained=True, **quick)[0]
accuracy_of = {key: float((p == y_test).mean()) for key, p in predictions.items()}
winner = {}
for n_labels in (250, 1000, 3600):
    means = {m: np.mean([a for (m2, n2, _), a in accuracy_of.items() if m2 == m and n2 == n_labels])
             for m in ("bow", "scratch", "ulmfit")}
    winner[n_labels] = max(means, key=means.get)
report = {"predictions": predictions, "accuracy": accuracy_of, "winner": winner}
majority = y_test.mean()
gain = {}  # mean accuracy over the seeds, minus the majority guess
for n_labels in (250, 1000, 3600):
    gain[n_labels] = {m: np.mean([accuracy_of[m, n_labels, s] for s in (1, 2)]) - majority for m in ("bow", "scratch", "ulmfit")}
    spread = {m: np.ptp([accuracy_of[m, n_labels, s] for s in (1, 2)]) for m in ("bow", "scratch", "ulmfit")}
    print(f"{n_labels:>5} labels, accuracy - majority ({majority:.3f}):",
          "  ".join(f"{m} {g:+.3f} (seeds differ by {spread[m]:.3f})" for m, g in gain[n_labels].items()),
          "-> winner", winner[n_labels])
# conclusions read off the table, not written in advance
margin = {n: gain[n][winner[n]] - sorted(gain[n].values())[-2] for n in gain}
print("winner's margin over the runner-up:", {n: round(float(m), 3) for n, m in margin.items()})
print("ULMFiT above the LSTM from scratch at:", [n for n in gain if gain[n]["ulmfit"] > gain[n]["scratch"]])
print("LSTMs at or below the majority guess:", [(m, n) for n in gain for m in ("scratch", "ulmfit") if gain[n][m] <= 0])
# END SOLUTION

# %%
check("05.13", report)

# %% [markdown] tags=["solution"]
# Read the conclusions from the printed lines, which the check recomputes from your predictions. What held in our
# runs, and why: the bag of words won at every size, but its margins over the runner-up were a few points at most,
# about as large as the difference between two seeds, so the order of the three at one size is not a finding. At 16
# tokens and 2 epochs the LSTMs often sit at or even below the majority guess with 250 or 1,000 labels (a run can
# collapse onto one class and predict it for every review), while a logistic regression on word counts is a convex problem that uses every label.
# ULMFiT did not reliably beat the LSTM from scratch at any size (in our run it never did; other seeds and
# machines can flip a cell): its encoder, trained on Austen and
# 4,000 review texts, learnt grammar more than which words mean "great" (§6's probe measures this directly). The
# pattern to expect with more data or longer texts: the LSTMs close the gap as labels grow, and a pretraining corpus
# far larger than ours is what makes transfer pay with few labels.

# %% [markdown]
# ### Exercise 05.14 · Debug this: a stateful LM that cannot learn (difficulty 2, about 15 minutes)
#
# The model below keeps its state across batches like `LMModel3` (§4), but its recurrence is PyTorch's
# `nn.GRUCell` (state `None` means zeros, the way `nn.GRU` and `nn.RNN` take it). Training it fails on the second
# batch with "Trying to backward through the graph a second time". Run the cell to see it. Once that is patched, it
# would still learn nothing useful: its loader shuffles, so the state it carries belongs to some other part of the
# text, and the last, smaller batch would not fit the state's shape.
#
# Write `LMModel3Fixed(vocab_sz, n_hidden)` (the same layers `i_h`, `cell`, `h_o`, state `self.h`, `reset()`) that
# keeps its state across batches without keeping its history, and `make_loader(dataset, bs)` returning a DataLoader
# (torch's or fastai's) over a dataset already arranged by `group_chunks`, that keeps the order and drops the last
# incomplete batch. The check trains 3 batches, checks that the kept state has no `grad_fn`, that the state really
# carries over, that `reset()` zeroes it, and iterates your loader twice.

# %%
from torch.utils.data import DataLoader
from course_utils.data import human_numbers

hn_train, hn_valid = human_numbers()
hn_tokens = " . ".join(line.strip() for line in hn_train + hn_valid).split(" ")
hn_vocab = list(dict.fromkeys(hn_tokens))  # 30 words
hn_nums = torch.tensor([hn_vocab.index(w) for w in hn_tokens[:3000]])
hn_seqs = [(hn_nums[i:i + 3], hn_nums[i + 3]) for i in range(0, len(hn_nums) - 4, 3)]


class GRULMBuggy(nn.Module):
    def __init__(self, vocab_sz, n_hidden):
        super().__init__()
        self.i_h = nn.Embedding(vocab_sz, n_hidden)
        self.cell = nn.GRUCell(n_hidden, n_hidden)
        self.h_o = nn.Linear(n_hidden, vocab_sz)
        self.h = None

    def forward(self, x):
        for tok in x.unbind(1):  # the 3 columns of x, one time step each
            self.h = self.cell(self.i_h(tok), self.h)
        return self.h_o(self.h)

    def reset(self):
        self.h = None


def make_loader_buggy(dataset, bs):
    return DataLoader(dataset, batch_size=bs, shuffle=True, generator=torch.Generator().manual_seed(0))


torch.manual_seed(0)
buggy = GRULMBuggy(len(hn_vocab), 64)
buggy_opt = torch.optim.SGD(buggy.parameters(), lr=0.1)
try:
    for xb, yb in make_loader_buggy(hn_seqs, 64):
        loss = F.cross_entropy(buggy(xb), yb)
        buggy_opt.zero_grad()
        loss.backward()
        buggy_opt.step()
except RuntimeError as err:
    print("RuntimeError:", str(err).split(" (")[0])

# %%
class LMModel3Fixed(nn.Module):
    def __init__(self, vocab_sz, n_hidden):
        super().__init__()
        self.i_h = nn.Embedding(vocab_sz, n_hidden)
        self.cell = nn.GRUCell(n_hidden, n_hidden)
        self.h_o = nn.Linear(n_hidden, vocab_sz)
        self.h = None

    def forward(self, x):
        # BEGIN SOLUTION
        h = self.h
        for tok in x.unbind(1):
            h = self.cell(self.i_h(tok), h)
        self.h = h.detach()  # the next batch starts from this value, with no graph behind it
        return self.h_o(h)
        # END SOLUTION

    def reset(self):
        self.h = None


def make_loader(dataset, bs):
    # BEGIN SOLUTION
    return DataLoader(dataset, batch_size=bs, shuffle=False, drop_last=True)
    # END SOLUTION

# %%
check("05.14", LMModel3Fixed, make_loader)

# %% [markdown]
# ## Further reading
#
# - Jeremy Howard and Sylvain Gugger, *Deep Learning for Coders with fastai and PyTorch*, chapters 10 ("NLP deep dive:
#   RNNs") and 12 ("A language model from scratch"); the
#   [fastbook notebooks](https://github.com/fastai/fastbook) run them.
# - Seth Weidman, *Deep Learning from Scratch*, chapter 6 ("Recurrent neural networks": RNN, GRU and LSTM nodes
#   with backpropagation through time).
# - Stephen Merity, Nitish Shirish Keskar and Richard Socher,
#   [Regularizing and Optimizing LSTM Language Models](https://arxiv.org/abs/1708.02182) (AWD-LSTM: weight-dropped
#   LSTM, AR and TAR, weight tying).
# - Jeremy Howard and Sebastian Ruder,
#   [Universal Language Model Fine-tuning for Text Classification](https://arxiv.org/abs/1801.06146) (ULMFiT:
#   gradual unfreezing, discriminative learning rates).
# - Andrej Karpathy, [The Unreasonable Effectiveness of Recurrent Neural Networks](https://karpathy.github.io/2015/05/21/rnn-effectiveness/)
#   (character-level language models and sampling).
# - Christopher Olah, [Understanding LSTM Networks](https://colah.github.io/posts/2015-08-Understanding-LSTMs/)
#   (the gates, drawn step by step, and the GRU variant).
