"""Fill the crop cache before training (*Deep Learning with PyTorch* ch. 10's prepcache). Used in 08_ct.

    python -m course_utils.ct.prepcache --data-root DIR --cache-dir DIR [--num-workers N]

also `prep_cache(data_root, cache_dir)` in-process. It reads every candidate's crop once through
`crop_cache`, so training later reads 18 KB crops instead of whole series. Returns (crops, seconds).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from torch.utils.data import DataLoader

from course_utils.ct.dsets import LunaDataset

__all__ = ["main", "prep_cache"]


def prep_cache(data_root: str, cache_dir: str, width_irc=(16, 24, 24), batch_size: int = 256,
               num_workers: int = 0) -> tuple[int, float]:
    """Read every candidate's crop through the disk cache in `cache_dir`; return (crops read, seconds). Taught in 08_ct."""
    start = time.perf_counter()
    dataset = LunaDataset(data_root, width_irc=width_irc, cache_dir=cache_dir)
    seen = sum(len(batch[1]) for batch in DataLoader(dataset, batch_size=batch_size, num_workers=num_workers))
    return seen, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: fill the cache and print how many crops and how long. Used in 08_ct."""
    parser = argparse.ArgumentParser(prog="python -m course_utils.ct.prepcache", description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=os.environ.get("LUNA_ROOT"), help="default: $LUNA_ROOT")
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--num-workers", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.data_root:
        parser.error("--data-root (or $LUNA_ROOT) is required")
    seen, seconds = prep_cache(args.data_root, args.cache_dir, num_workers=args.num_workers)
    print(f"{seen} crops cached in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
