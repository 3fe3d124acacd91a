"""Builders for text: Jane Austen's six novels (janeaustenr) and the generated HUMAN_NUMBERS."""

from __future__ import annotations

import warnings
import zlib
from pathlib import Path

__all__ = [
    "AUSTEN_BOOKS", "build_austen", "build_human_numbers", "human_numbers_lines", "number_words",
    "read_janeaustenr",
]

# janeaustenr's names, in the order of its austen_books(): publication order.
AUSTEN_BOOKS = {
    "sensesensibility": "Sense & Sensibility",
    "prideprejudice": "Pride & Prejudice",
    "mansfieldpark": "Mansfield Park",
    "emma": "Emma",
    "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
}


def build_austen(rdb: Path, out: Path) -> None:
    """austen/<book>.txt for the six novels: each book's lines joined with "\\n", UTF-8."""
    books = read_janeaustenr(rdb)
    folder = out / "austen"
    folder.mkdir(parents=True, exist_ok=True)
    for name in AUSTEN_BOOKS:
        text = "\n".join(books[name])
        (folder / f"{name}.txt").write_bytes(text.encode("utf-8"))


def read_janeaustenr(rdb: Path) -> dict[str, list[str]]:
    """The novels of janeaustenr's R lazy-load database (data/Rdata.rdb + Rdata.rdx), as lines.

    The .rdx index (a gzip-compressed R serialization) maps each object to an (offset, length) in
    the .rdb; there each object is a 4-byte length followed by a zlib stream of an R serialization,
    which the `rdata` package parses. Without a file header, rdata warns "Unknown file type:
    assumed RDS", which is exactly right here, so that warning is silenced.
    """
    import rdata

    index = rdata.read_rds(rdb.with_suffix(".rdx"))
    blob = rdb.read_bytes()
    books = {}
    for name, (offset, length) in index["variables"].items():
        chunk = blob[int(offset) : int(offset) + int(length)]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Unknown file type: assumed RDS")
            parsed = rdata.parser.parse_data(zlib.decompress(chunk[4:]))
        books[str(name)] = [str(line) for line in rdata.conversion.convert(parsed)]
    return books


# ------------------------------------------------------------------------------------------------
# HUMAN_NUMBERS: fastai's toy language-model corpus, regenerated
# ------------------------------------------------------------------------------------------------

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
    """1 <= n <= 9999 in English words as fastai writes them: no "and", no hyphens.

    8121 -> "eight thousand one hundred twenty one".
    """
    if not 1 <= n <= 9999:
        raise ValueError(f"number_words covers 1..9999, got {n}")
    words = []
    if n >= 1000:
        words += [_ONES[n // 1000], "thousand"]
        n %= 1000
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
    if n:
        words.append(_ONES[n])
    return " ".join(words)


def human_numbers_lines() -> tuple[list[str], list[str]]:
    """fastai's HUMAN_NUMBERS: train 1..7,999 and valid 8,001..9,999, each line ending " \\n"."""
    train = [number_words(n) + " \n" for n in range(1, 8000)]
    valid = [number_words(n) + " \n" for n in range(8001, 10000)]
    return train, valid


def build_human_numbers(lines: tuple[list[str], list[str]], out: Path) -> None:
    """human_numbers/train.txt and valid.txt, in the layout of fastai's URLs.HUMAN_NUMBERS."""
    folder = out / "human_numbers"
    folder.mkdir(parents=True, exist_ok=True)
    train, valid = lines
    (folder / "train.txt").write_text("".join(train), encoding="ascii", newline="\n")
    (folder / "valid.txt").write_text("".join(valid), encoding="ascii", newline="\n")
