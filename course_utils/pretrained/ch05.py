"""05_nlp's cached training steps: ULMFiT's stage 1 (`austen_lm`) and stage 2 (`review_lm`).

No pretrained language model can be downloaded in this course, so ULMFiT is staged with models the
course trains itself, on the CPU with one torch thread and fixed seeds: an AWD-LSTM pretrained on three
Austen novels (the dataset `austen_lm`, fastai's WikiText-103 model in the book), then fine-tuned on the
training reviews (the dataset `review_lm`, with the same LM from scratch for comparison). `course data`
prepares both once; the loaders `austen_lm()` and `review_lm()` train them first if the cache lacks them.
The registry names `build_austen_lm`/`austen_lm` and `build_review_lm`/`review_lm` as their builders and
loaders. fastai is imported inside the functions that need it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from course_utils.data import ensure
from course_utils.data.prepare import training_bar

__all__ = [
    "AUSTEN_LM_BOOKS",
    "AUSTEN_LM_CONFIG",
    "AUSTEN_LM_FILES",
    "AUSTEN_LM_NAME",
    "REVIEW_LM_FILES",
    "REVIEW_LM_NAME",
    "REVIEW_LM_WORDS",
    "austen_lm",
    "austen_paragraphs",
    "build_austen_lm",
    "build_review_lm",
    "finetune_review_lm",
    "load_austen_lm",
    "pretrain_austen_lm",
    "review_lm",
    "review_lm_loaders",
    "review_lm_text",
    "save_austen_lm",
]

# ------------------------------------------------------------------------------------------------
# The general language model of ULMFiT's stage 1 (05_nlp): an AWD-LSTM pretrained on Jane Austen
# ------------------------------------------------------------------------------------------------

AUSTEN_LM_NAME = "austen_lm"  # the stem of the .pth (state dict) and .pkl (vocab) pretrained_fnames expects
AUSTEN_LM_BOOKS = ("emma", "prideprejudice", "persuasion")
AUSTEN_LM_CONFIG = {"emb_sz": 64, "n_hid": 128, "n_layers": 2}  # overrides of fastai's awd_lstm_lm_config
AUSTEN_LM_FILES = (f"models/{AUSTEN_LM_NAME}.pth", f"models/{AUSTEN_LM_NAME}.pkl", f"models/{AUSTEN_LM_NAME}.json")


def austen_paragraphs(text: str) -> list[str]:
    """A novel's paragraphs: the blocks between blank lines, each block's lines joined by single spaces.

    Headings ("CHAPTER I") are paragraphs too. Emma + Pride and Prejudice + Persuasion give 5,537
    paragraphs and 362,291 words (`str.split` words). Taught in 05_nlp.
    """
    import re

    return [" ".join(block.split()) for block in re.split(r"\n\s*\n", text) if block.strip()]


def pretrain_austen_lm(paragraphs: list[str], epochs: int = 5, lr: float = 1e-2, seed: int = 42,
                       config: dict | None = None, drop_mult: float = 0.3, max_vocab: int = 3000,
                       min_freq: int = 3, bs: int = 64, seq_len: int = 72, valid_pct: float = 0.1, progress=None):
    """ULMFiT's stage 1 on the CPU: fastai's AWD-LSTM language model trained on `paragraphs`. Used in 05_nlp.

    The fastai recipe of the chapter: `TextBlock.from_df(is_lm=True, max_vocab, min_freq)` (tokenized in
    this process), a random `valid_pct` of the paragraphs held out (seeded), `language_model_learner(dls,
    AWD_LSTM, config=dict(awd_lstm_lm_config, **config), pretrained=False, drop_mult)` and
    `fit_one_cycle(epochs, lr)`, with `set_seed(seed, reproducible=True)` before the data and the model.
    It runs on the CPU with one torch thread, silently (no bars, no epoch table), and leaves the caller's
    random generators, thread count and cuDNN flags as they were. Returns (learner, info) where info
    holds the settings, 'vocab_size', the per-epoch 'history' and the last epoch's 'valid_loss',
    'valid_accuracy' and 'valid_perplexity'. `progress`, a tqdm bar or None, is told the number of training
    batches and advanced once per batch.
    """
    import random
    import warnings

    import numpy as np
    import pandas as pd

    py_state, np_state = random.getstate(), np.random.get_state()  # before importing fastai, which draws from `random`
    with warnings.catch_warnings():  # fastai's import chain warns about torch.jit
        warnings.simplefilter("ignore")
        from fastai.text.all import (AWD_LSTM, ColReader, DataBlock, Perplexity, RandomSplitter, TextBlock,
                                     accuracy, awd_lstm_lm_config, language_model_learner, set_seed)

    config = dict(AUSTEN_LM_CONFIG if config is None else config)
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    threads = torch.get_num_threads()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=devices), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            set_seed(seed, reproducible=True)
            block = TextBlock.from_df("text", is_lm=True, max_vocab=max_vocab, min_freq=min_freq, n_workers=0)
            dblock = DataBlock(blocks=block, get_x=ColReader("text"), splitter=RandomSplitter(valid_pct, seed=seed))
            dls = dblock.dataloaders(pd.DataFrame({"text": list(paragraphs)}), bs=bs, seq_len=seq_len,
                                     num_workers=0, device="cpu")
            set_seed(seed, reproducible=True)
            learn = language_model_learner(dls, AWD_LSTM, config=dict(awd_lstm_lm_config, **config), pretrained=False,
                                           drop_mult=drop_mult, metrics=[accuracy, Perplexity()])
            if progress is not None:
                progress.reset(total=epochs * len(dls.train))
            with learn.no_bar(), learn.no_logging():
                learn.fit_one_cycle(epochs, lr, cbs=_progress_callbacks(progress))
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
        torch.set_num_threads(threads)
    history = [[round(float(v), 4) for v in row] for row in learn.recorder.values]
    info = {
        "name": AUSTEN_LM_NAME,
        "paragraphs": len(paragraphs),
        "words": sum(len(p.split()) for p in paragraphs),
        "vocab_size": len(dls.vocab),
        "config": config,
        "drop_mult": drop_mult,
        "max_vocab": max_vocab,
        "min_freq": min_freq,
        "epochs": epochs,
        "lr": lr,
        "seed": seed,
        "bs": bs,
        "seq_len": seq_len,
        "valid_pct": valid_pct,
        "history_columns": ["train_loss", "valid_loss", "accuracy", "perplexity"],
        "history": history,
        "valid_loss": history[-1][1],
        "valid_accuracy": history[-1][2],
        "valid_perplexity": history[-1][3],
    }
    return learn, info


def _progress_callbacks(progress) -> list:
    """A fastai callback advancing `progress` (a tqdm bar) once per training batch; none without a bar."""
    if progress is None:
        return []
    from fastai.callback.core import Callback

    class TrainingBar(Callback):
        def after_batch(self):
            if self.training:
                progress.update(1)

    return [TrainingBar()]


def save_austen_lm(learn, info: dict, folder: Path) -> Path:
    """Write the stage-1 LM as fastai's pretrained format: <name>.pth (state dict), <name>.pkl (vocab), <name>.json.

    The .pth/.pkl pair is what `language_model_learner(..., pretrained_fnames=(stem, stem))` reads;
    the .json holds `info` (settings and validation scores). Returns `folder`. Used in 05_nlp.
    """
    import pickle

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = info["name"]
    torch.save({k: v.detach().cpu() for k, v in learn.model.state_dict().items()}, folder / f"{name}.pth")
    with open(folder / f"{name}.pkl", "wb") as f:
        pickle.dump([str(token) for token in learn.dls.vocab], f)
    (folder / f"{name}.json").write_text(json.dumps(info, indent=1))
    return folder


def build_austen_lm(source: tuple[Path, ...], out: Path) -> None:
    """Builder of the `austen_lm` dataset: pretrain on Emma, Pride and Prejudice and Persuasion, write the files.

    `source` holds the main file of its one input, austen's prideprejudice.txt (the other novels sit
    beside it). About 150 s on one CPU thread; repeatable on one machine (seed 42, one thread, CPU), while
    another CPU trains slightly different weights, so 05_nlp treats its accuracy as training-dependent.
    Used in 05_nlp (through `course data`).
    """
    folder = Path(source[0]).parent
    paragraphs = [p for book in AUSTEN_LM_BOOKS for p in austen_paragraphs((folder / f"{book}.txt").read_text(encoding="utf-8"))]
    with training_bar(AUSTEN_LM_NAME) as bar:
        learn, info = pretrain_austen_lm(paragraphs, progress=bar)
    info["books"] = list(AUSTEN_LM_BOOKS)
    save_austen_lm(learn, info, out / "models")


def load_austen_lm(folder: Path, name: str = AUSTEN_LM_NAME):
    """The stage-1 LM saved in `folder` as a fastai model on the CPU (eval mode), its vocab and info. Used in 05_nlp.

    Checks what `pretrained_fnames` would only find out later: the three files exist, and the vocab
    has one row per embedding row. A missing file raises FileNotFoundError and a mismatch ValueError,
    each saying that `course data austen_lm --force` prepares the files again.
    """
    import pickle
    import warnings

    with warnings.catch_warnings():  # fastai's import chain warns about torch.jit
        warnings.simplefilter("ignore")
        from fastai.text.all import AWD_LSTM, awd_lstm_lm_config, get_language_model

    folder = Path(folder)
    fix = "run `course data austen_lm --force` to prepare them again (about 3 minutes on a CPU)"
    missing = [f"{name}{ext}" for ext in (".pth", ".pkl", ".json") if not (folder / f"{name}{ext}").is_file()]
    if missing:
        raise FileNotFoundError(f"the Austen language model is incomplete in {folder}: {', '.join(missing)} missing; {fix}")
    info = json.loads((folder / f"{name}.json").read_text())
    with open(folder / f"{name}.pkl", "rb") as f:
        vocab = pickle.load(f)
    state = torch.load(folder / f"{name}.pth", map_location="cpu", weights_only=True)
    rows = state["0.encoder.weight"].shape[0] if "0.encoder.weight" in state else None
    if rows != len(vocab) or len(vocab) != info.get("vocab_size"):
        raise ValueError(f"the Austen language model in {folder} does not match its vocab "
                         f"({rows} embedding rows, {len(vocab)} tokens in {name}.pkl); {fix}")
    model = get_language_model(AWD_LSTM, len(vocab), config=dict(awd_lstm_lm_config, **info["config"]),
                               drop_mult=info["drop_mult"])
    model.load_state_dict(state)
    return model.eval(), vocab, info


def austen_lm(online: bool = False) -> tuple[Path, dict]:
    """ULMFiT's stage 1, cached: (folder holding austen_lm.pth + austen_lm.pkl, info dict). Taught in 05_nlp.

    The course's stand-in for fastai's WikiText-103 AWD-LSTM: `pretrain_austen_lm` on the paragraphs of
    Emma, Pride and Prejudice and Persuasion (emb 64, 2 LSTM layers of 128, vocab 3,008, 5 epochs,
    seed 42). `course data` trains it once on the CPU (about 150 s on one thread) and this loads it,
    training it first when the cache lacks it. Always trained on the CPU, so CPU and GPU kernels start
    stage 2 from identical weights. Use it as
    `language_model_learner(dls, AWD_LSTM, config=..., pretrained_fnames=(folder / "austen_lm", folder / "austen_lm"))`
    (the same config: emb_sz 64, n_hid 128, n_layers 2). info holds 'valid_accuracy',
    'valid_perplexity', 'vocab_size', 'config' and the training settings.
    """
    folder = ensure(AUSTEN_LM_NAME, online) / "models"
    return folder, json.loads((folder / f"{AUSTEN_LM_NAME}.json").read_text())


# ------------------------------------------------------------------------------------------------
# ULMFiT's stage 2 (05_nlp): the Austen LM fine-tuned on review text, and the same LM from scratch
# ------------------------------------------------------------------------------------------------

REVIEW_LM_NAME = "review_lm"
REVIEW_LM_WORDS = 40  # each training review cut to its first 40 words: the LM's cost is its 3,000-way decoder
REVIEW_LM_FILES = ("models/review_lm.pth", "models/review_lm.pkl", "models/review_encoder.pth", "models/review_lm.json")


def review_lm_text(review: str, n_words: int = REVIEW_LM_WORDS) -> str:
    """A review without its `<br />` tags, cut to its first n_words words. Taught in 05_nlp."""
    return " ".join(review.replace("<br />", " ").split()[:n_words])


def review_lm_loaders(texts: list[str], seed: int = 42, device: str | torch.device = "cpu", path: Path | None = None):
    """Stage 2's language-model DataLoaders over `texts`. Taught in 05_nlp.

    `TextBlock.from_df(is_lm=True, max_vocab=3000, min_freq=3)` tokenized in this process, a seeded random 10%
    of the texts held out, bs 64, seq_len 72, no worker processes. The vocab depends only on the texts, so
    the notebook and the cached step build the same one.
    """
    import warnings

    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastai.text.all import ColReader, DataBlock, RandomSplitter, TextBlock, set_seed

        set_seed(seed, reproducible=True)
        block = TextBlock.from_df("text", is_lm=True, max_vocab=3000, min_freq=3, n_workers=0)
        dblock = DataBlock(blocks=block, get_x=ColReader("text"), splitter=RandomSplitter(0.1, seed=seed))
        return dblock.dataloaders(pd.DataFrame({"text": list(texts)}), bs=64, seq_len=72, num_workers=0,
                                  device=device, path=path or Path("."))


def finetune_review_lm(dls, austen_folder: Path | None, seed: int = 42, progress=None):
    """Stage 2 for one starting point: (learner, [perplexity before, after 1 frozen epoch, after 1 unfrozen]).

    With `austen_folder`, the LM starts from the Austen weights (`pretrained_fnames`: `match_embeds` gives
    review words Austen knew their Austen rows, new words the mean row), trains 1 epoch frozen (embeddings
    and decoder; `fit_one_cycle(1, 2e-2)`), then 1 epoch unfrozen (`fit_one_cycle(1, 1e-2)`). With None,
    the same model from random weights gets the same two calls. Seeded before the model is built; silent,
    except that `progress` (a tqdm bar or None) is advanced once per training batch. Used in 05_nlp.
    """
    import random
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastai.text.all import (AWD_LSTM, Perplexity, accuracy, awd_lstm_lm_config, language_model_learner,
                                     set_seed)

        set_seed(seed, reproducible=True)
        dls.train.rng = random.Random(seed)
        start = (dict(pretrained_fnames=(Path(austen_folder) / AUSTEN_LM_NAME,) * 2) if austen_folder
                 else dict(pretrained=False))
        learn = language_model_learner(dls, AWD_LSTM, config=dict(awd_lstm_lm_config, **AUSTEN_LM_CONFIG),
                                       drop_mult=0.3, metrics=[accuracy, Perplexity()], **start)
        with learn.no_bar(), learn.no_logging():
            perplexity = [float(learn.validate()[2])]
            learn.fit_one_cycle(1, 2e-2, cbs=_progress_callbacks(progress))  # pretrained: all frozen but embeddings, decoder
            perplexity.append(float(learn.recorder.values[-1][3]))
            learn.unfreeze()
            learn.fit_one_cycle(1, 1e-2, cbs=_progress_callbacks(progress))
            perplexity.append(float(learn.recorder.values[-1][3]))
    return learn, perplexity


def build_review_lm(source: tuple[Path, ...], out: Path) -> None:
    """Builder of the `review_lm` dataset: stage 2 from the Austen LM and from scratch, on the CPU.

    `source` holds the main files of its two inputs: austen_lm's models/austen_lm.pth and reviews'
    reviews/train.parquet. Writes review_lm.pth + review_lm.pkl (the fine-tuned LM and its vocab, for
    sampling), review_encoder.pth (its encoder, which the stage-3 classifier loads) and review_lm.json (both
    perplexity curves). About 60 s on one CPU thread. Used in 05_nlp (through `course data`).
    """
    import pickle
    import random

    import numpy as np
    import pandas as pd

    austen_folder = Path(source[0]).parent
    train = pd.read_parquet(source[1])  # reviews/train.parquet, the main file of the input `reviews`
    texts = [review_lm_text(r) for r in train["review"]]
    py_state, np_state = random.getstate(), np.random.get_state()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]), training_bar(REVIEW_LM_NAME) as bar:
            dls = review_lm_loaders(texts)
            bar.reset(total=2 * 2 * len(dls.train))  # two starting points, two one-epoch fits each
            learn, ppl_pretrained = finetune_review_lm(dls, austen_folder, progress=bar)
            _, ppl_scratch = finetune_review_lm(dls, None, progress=bar)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_num_threads(threads)
    folder = out / "models"
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in learn.model.state_dict().items()}, folder / f"{REVIEW_LM_NAME}.pth")
    torch.save({k: v.detach().cpu() for k, v in learn.model[0].state_dict().items()}, folder / "review_encoder.pth")
    with open(folder / f"{REVIEW_LM_NAME}.pkl", "wb") as f:
        pickle.dump([str(token) for token in dls.vocab], f)
    info = {"name": REVIEW_LM_NAME, "texts": len(texts), "words_per_text": REVIEW_LM_WORDS, "vocab_size": len(dls.vocab),
            "config": AUSTEN_LM_CONFIG, "drop_mult": 0.3, "seed": 42,
            "perplexity_pretrained": [round(p, 4) for p in ppl_pretrained],
            "perplexity_scratch": [round(p, 4) for p in ppl_scratch]}
    (folder / f"{REVIEW_LM_NAME}.json").write_text(json.dumps(info, indent=1))


def review_lm(online: bool = False) -> tuple[Path, dict]:
    """ULMFiT's stage 2, cached: (folder with review_lm.pth/.pkl and review_encoder.pth, info). Taught in 05_nlp.

    `course data` runs `finetune_review_lm` once on the CPU from the Austen LM and from scratch (seed 42),
    so both kernels continue from identical weights; info holds both perplexity curves
    ('perplexity_pretrained', 'perplexity_scratch': before, after the frozen epoch, after the unfrozen one).
    """
    folder = ensure(REVIEW_LM_NAME, online) / "models"
    return folder, json.loads((folder / f"{REVIEW_LM_NAME}.json").read_text())
