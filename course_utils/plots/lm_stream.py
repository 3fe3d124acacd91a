"""Where a language-model data loader puts each token of a stream. Used in 05_nlp.

The layout behind `ch05.draw_lm_batches`. It draws nothing.
"""

from __future__ import annotations

__all__ = ["lm_layout"]


def lm_layout(n_tokens: int, bs: int, seq_len: int) -> dict:
    """Where fastai's `LMDataLoader(shuffle=False)` puts each token of one stream. Used in 05_nlp.

    One token is kept back so that the last input has a target; the rest is cut to a multiple of
    `bs` and split into `bs` rows of `row_len = (n_tokens - 1) // bs` consecutive tokens. Batch k
    takes columns `k * seq_len` onwards (the last batch may be shorter); its targets are the same
    positions plus one. Returns {"row_len", "n_batches", "batch_lens", "dropped"}, where
    `dropped` lists the stream positions that appear in no input and no target.
    """
    n_tokens, bs, seq_len = int(n_tokens), int(bs), int(seq_len)
    row_len = (n_tokens - 1) // bs
    if row_len < 1:
        raise ValueError(f"{n_tokens} tokens are too few for {bs} rows")
    n_batches = -(-row_len // seq_len)
    batch_lens = [min(seq_len, row_len - k * seq_len) for k in range(n_batches)]
    return {"row_len": row_len, "n_batches": n_batches, "batch_lens": batch_lens,
            "dropped": list(range(bs * row_len + 1, n_tokens))}
