"""LunaTrainingApp: training as a command-line application (*Deep Learning with PyTorch* ch. 11-12). Used in 08_ct.

    python -m course_utils.ct.training --data-root DIR --epochs 1 --epoch-len 2000 [--balanced 1] [--split series]
    python -m torch.distributed.run --standalone --nproc_per_node=2 -m course_utils.ct.training --ddp ...

The same class runs in-process from a notebook: `LunaTrainingApp([...]).main()` returns the run's
summary. Per epoch it trains on `--epoch-len` samples, validates on the whole validation split, keeps
one metrics tensor per sample (label, probability of "nodule", loss), writes TensorBoard scalars under
`<runs-dir>/<tb-prefix>/<time>-{trn,val}_cls-<comment>` (global step = samples seen) and saves a
checkpoint (state dict, optimizer, epoch, argv, sha256), keeping the best by F1.

Under torchrun (`--ddp`) each process trains on its share of every epoch; DistributedDataParallel
all-reduces the gradients in `backward`, validation metric sums are all-reduced, and rank 0 alone logs,
writes TensorBoard files and checkpoints (unwrapping `.module`). The summary line rank 0 prints
(`LUNA_SUMMARY {...json...}`) says how many processes ran, how many samples they saw together, and
whether their parameters are identical (an all-gathered checksum).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import io
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, RandomSampler, Subset

from course_utils.ct.augment import AUGMENTATIONS
from course_utils.ct.dsets import LunaDataset
from course_utils.ct.model import LunaModel

__all__ = ["LunaTrainingApp", "METRICS_SIZE", "SUMMARY_PREFIX", "classification_metrics", "f_beta", "main", "metric_sums",
           "metrics_from_sums"]

log = logging.getLogger(__name__)

METRICS_LABEL_NDX, METRICS_PRED_NDX, METRICS_LOSS_NDX, METRICS_SIZE = 0, 1, 2, 3
SUMMARY_PREFIX = "LUNA_SUMMARY "


def metric_sums(metrics_t: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """tp, fp, fn, tn and the loss summed over all, positive and negative samples of a (METRICS_SIZE, N) tensor.

    Sums, not means, because sums add up across processes (what DDP all-reduces). Used in 08_ct."""
    label = metrics_t[METRICS_LABEL_NDX] >= 0.5
    pred = metrics_t[METRICS_PRED_NDX] >= threshold
    loss = metrics_t[METRICS_LOSS_NDX].double()
    return torch.stack([(label & pred).sum(), (~label & pred).sum(), (label & ~pred).sum(), (~label & ~pred).sum(),
                        loss.sum(), loss[label].sum(), loss[~label].sum()]).double()


def f_beta(precision: float, recall: float, beta: float) -> float:
    """(1 + b^2) P R / (b^2 P + R): recall counts beta times as much as precision; 0.0 when both are 0. Used in 08_ct."""
    denominator = beta**2 * precision + recall
    return (1 + beta**2) * precision * recall / denominator if denominator else 0.0


def metrics_from_sums(sums_t: torch.Tensor) -> dict[str, float]:
    """Loss per class, % correct, precision, recall, F1 and F2 from `metric_sums`; 0.0 where a count is 0.

    Used in 08_ct."""
    def ratio(a, b):
        return a / b if b else 0.0

    tp, fp, fn, tn = (int(v) for v in sums_t[:4].tolist())
    loss_all, loss_pos, loss_neg = sums_t[4:].tolist()
    pos, neg = tp + fn, tn + fp
    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    return {
        "loss/all": ratio(loss_all, pos + neg), "loss/pos": ratio(loss_pos, pos), "loss/neg": ratio(loss_neg, neg),
        "correct/all": 100 * ratio(tp + tn, pos + neg), "correct/pos": 100 * ratio(tp, pos),
        "correct/neg": 100 * ratio(tn, neg),
        "pr/precision": precision, "pr/recall": recall, "pr/f1_score": f_beta(precision, recall, 1.0),
        "pr/f2_score": f_beta(precision, recall, 2.0),
        "count/pos": pos, "count/neg": neg, "count/tp": tp,
    }


def classification_metrics(metrics_t: torch.Tensor, threshold: float = 0.5) -> dict[str, float]:
    """The logged metrics of one process's (METRICS_SIZE, N) tensor at a decision threshold. Used in 08_ct."""
    return metrics_from_sums(metric_sums(metrics_t, threshold))


class LunaTrainingApp:
    """The nodule-candidate classifier's training run, configured by command-line arguments. Used in 08_ct."""

    def __init__(self, sys_argv: list[str] | None = None):
        parser = argparse.ArgumentParser(prog="python -m course_utils.ct.training",
                                         description="Train LunaModel on a LUNA-format folder (08_ct).")
        parser.add_argument("--data-root", default=os.environ.get("LUNA_ROOT"),
                            help="folder with subset*/, candidates.csv, annotations.csv (default: $LUNA_ROOT)")
        parser.add_argument("--epochs", type=int, default=1)
        parser.add_argument("--batch-size", type=int, default=32, help="per process")
        parser.add_argument("--num-workers", type=int, default=0)
        parser.add_argument("--epoch-len", type=int, default=2000, help="training samples per epoch, all processes")
        parser.add_argument("--lr", type=float, default=1e-3)
        parser.add_argument("--optimizer", choices=("adam", "sgd"), default="adam",
                            help="sgd is the book's SGD(momentum 0.99); it swings at this data size")
        parser.add_argument("--balanced", type=int, default=0, metavar="RATIO",
                            help="one positive per RATIO negatives in training (0: as the data come)")
        parser.add_argument("--augmented", action="store_true", help="all five augmentations at the book's sizes")
        parser.add_argument("--augment-flip", action="store_true")
        parser.add_argument("--augment-offset", action="store_true", help="shift up to 0.1 of the crop per axis")
        parser.add_argument("--augment-scale", action="store_true", help="scale by 1 +- 0.2 per axis")
        parser.add_argument("--augment-rotate", action="store_true", help="about the head-foot axis")
        parser.add_argument("--augment-noise", action="store_true", help="Gaussian noise, sigma 25 HU")
        parser.add_argument("--split", choices=("candidate", "series"), default="candidate",
                            help="validation: every --val-stride-th candidate (leaks) or series")
        parser.add_argument("--val-stride", type=int, default=10)
        parser.add_argument("--channels", type=int, default=4)
        parser.add_argument("--crop", type=int, nargs=3, default=(16, 24, 24), metavar=("D", "H", "W"))
        parser.add_argument("--cache-dir", default=None,
                            help="a disk cache of crops (fill it with python -m course_utils.ct.prepcache)")
        parser.add_argument("--runs-dir", default="runs", help="where TensorBoard logs and checkpoints go")
        parser.add_argument("--tb-prefix", default="luna")
        parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--ddp", action="store_true", help="run as one process of torchrun")
        parser.add_argument("--backend", choices=("gloo", "nccl"), default="gloo")
        parser.add_argument("--quiet", action="store_true", help="no progress log")
        parser.add_argument("comment", nargs="?", default="dlwpt", help="a word for the run's folder names")
        self.argv = list(sys.argv[1:] if sys_argv is None else sys_argv)
        self.args = parser.parse_args(self.argv)
        if not self.args.data_root:
            parser.error("--data-root (or $LUNA_ROOT) is required")
        self.augmentation_dict = {name: value for name, value in AUGMENTATIONS.items()
                                  if self.args.augmented or getattr(self.args, f"augment_{name}")}
        self.time_str = datetime.datetime.now().strftime("%Y-%m-%d_%H.%M.%S")
        self.rank, self.world_size = 0, 1
        self.totalTrainingSamples_count = 0
        self.trn_writer = self.val_writer = None

    # ---------------------------------------------------------------- set-up
    def initDistributed(self) -> torch.device:
        if self.args.ddp:
            import torch.distributed as dist

            dist.init_process_group(self.args.backend)
            self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
            if self.args.backend == "nccl":  # one GPU per process: LOCAL_RANK picks it
                return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        name = self.args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(name)

    def initModel(self) -> torch.nn.Module:
        torch.manual_seed(self.args.seed)
        model = LunaModel(conv_channels=self.args.channels, crop=self.args.crop).to(self.device)
        if self.args.ddp:
            from torch.nn.parallel import DistributedDataParallel

            model = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return model

    def initOptimizer(self) -> torch.optim.Optimizer:
        if self.args.optimizer == "sgd":
            return torch.optim.SGD(self.model.parameters(), lr=self.args.lr, momentum=0.99)
        return torch.optim.Adam(self.model.parameters(), lr=self.args.lr)

    def initTrainDl(self) -> DataLoader:
        args = self.args
        self.train_ds = LunaDataset(args.data_root, val_stride=args.val_stride, isValSet_bool=False, split=args.split,
                                    ratio_int=args.balanced, width_irc=args.crop, epoch_len=args.epoch_len,
                                    cache_dir=args.cache_dir, augmentation_dict=self.augmentation_dict, seed=args.seed)
        per_process = math.ceil(args.epoch_len / self.world_size)
        self.sample_generator = torch.Generator().manual_seed(args.seed * 1000 + self.rank)
        if args.balanced:  # the dataset interleaves; each process reads its own stride of it
            dataset = Subset(self.train_ds, list(range(self.rank, args.epoch_len, self.world_size)))
            return DataLoader(dataset, batch_size=args.batch_size, num_workers=args.num_workers)
        sampler = RandomSampler(self.train_ds, num_samples=per_process, generator=self.sample_generator)
        return DataLoader(self.train_ds, batch_size=args.batch_size, sampler=sampler, num_workers=args.num_workers)

    def initValDl(self) -> DataLoader:
        args = self.args
        self.val_ds = LunaDataset(args.data_root, val_stride=args.val_stride, isValSet_bool=True, split=args.split,
                                  width_irc=args.crop, cache_dir=args.cache_dir)
        shard = Subset(self.val_ds, list(range(self.rank, len(self.val_ds), self.world_size)))  # no padding
        return DataLoader(shard, batch_size=args.batch_size, num_workers=args.num_workers)

    def initTensorboardWriters(self) -> None:
        if self.rank != 0 or self.trn_writer is not None:
            return
        from torch.utils.tensorboard import SummaryWriter

        log_dir = Path(self.args.runs_dir) / self.args.tb_prefix / self.time_str
        self.trn_writer = SummaryWriter(log_dir=f"{log_dir}-trn_cls-{self.args.comment}")
        self.val_writer = SummaryWriter(log_dir=f"{log_dir}-val_cls-{self.args.comment}")

    # ---------------------------------------------------------------- the loop
    def main(self) -> dict:
        self.device = self.initDistributed()
        self.model = self.initModel()
        self.optimizer = self.initOptimizer()
        train_dl, val_dl = self.initTrainDl(), self.initValDl()
        best_f1, summary = -1.0, {}
        for epoch_ndx in range(1, self.args.epochs + 1):
            self.train_ds.set_epoch(epoch_ndx)
            if self.args.balanced:
                self.train_ds.shuffleSamples(np.random.default_rng(self.args.seed * 1000 + epoch_ndx))
            trn_metrics = self.doTraining(epoch_ndx, train_dl)
            self.logMetrics(epoch_ndx, "trn", trn_metrics)
            val_metrics = self.doValidation(epoch_ndx, val_dl)
            self.logMetrics(epoch_ndx, "val", val_metrics)
            if self.rank == 0:
                self.saveModel(epoch_ndx, val_metrics["pr/f1_score"] > best_f1)
            best_f1 = max(best_f1, val_metrics["pr/f1_score"])
            summary = {"epoch": epoch_ndx, "trn": trn_metrics, "val": val_metrics}
        summary.update(world_size=self.world_size, samples_seen=self.totalTrainingSamples_count,
                       replicas_identical=self.replicasIdentical(), checkpoint=str(self.checkpoint_path()))
        for writer in (self.trn_writer, self.val_writer):
            if writer is not None:
                writer.close()
        if self.args.ddp:
            import torch.distributed as dist

            # Every process waits here until all are done with their collectives: a process that tore its group
            # down while another was still finishing the last one made that one fail in about 1 run in 30.
            dist.barrier()
            dist.destroy_process_group()
        return summary

    def doTraining(self, epoch_ndx: int, train_dl: DataLoader) -> dict[str, float]:
        self.model.train()
        parts, seen = [], 0
        for batch_ndx, batch_tup in enumerate(self.progress(train_dl, f"E{epoch_ndx} training")):
            self.optimizer.zero_grad()
            loss_var, metrics = self.computeBatchLoss(batch_tup)
            loss_var.backward()
            self.optimizer.step()
            parts.append(metrics)
            seen += len(batch_tup[1])
        self.totalTrainingSamples_count += self.allReduce(torch.tensor([seen], dtype=torch.float64))[0].int().item()
        return self.reduceMetrics(torch.cat(parts, dim=1))

    def doValidation(self, epoch_ndx: int, val_dl: DataLoader) -> dict[str, float]:
        self.model.eval()
        with torch.no_grad():
            parts = [self.computeBatchLoss(batch_tup)[1] for batch_tup in self.progress(val_dl, f"E{epoch_ndx} validation")]
        return self.reduceMetrics(torch.cat(parts, dim=1) if parts else torch.zeros(METRICS_SIZE, 0))

    def computeBatchLoss(self, batch_tup) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean cross-entropy of a batch, and its (METRICS_SIZE, N) metrics rows (label, P(nodule), loss)."""
        input_t, label_t, _series_list, _center_list = batch_tup
        input_g, label_g = input_t.to(self.device, non_blocking=True), label_t.to(self.device, non_blocking=True)
        logits_g, probability_g = self.model(input_g)
        loss_g = F.cross_entropy(logits_g, label_g, reduction="none")  # logits, never softmax outputs
        metrics = torch.stack([label_g.float(), probability_g[:, 1], loss_g]).detach().cpu()
        return loss_g.mean(), metrics

    def reduceMetrics(self, metrics_t: torch.Tensor) -> dict[str, float]:
        """Metrics over every process: the confusion counts and loss sums are all-reduced, then divided."""
        return metrics_from_sums(self.allReduce(metric_sums(metrics_t)))

    def allReduce(self, tensor: torch.Tensor) -> torch.Tensor:
        if not self.args.ddp:
            return tensor
        import torch.distributed as dist

        tensor = tensor.to(self.device)
        dist.all_reduce(tensor)
        return tensor.cpu()

    def replicasIdentical(self) -> bool:
        """True when every process holds the same parameters (compares an all-gathered checksum)."""
        checksum = torch.tensor([sum(float(p.detach().double().sum()) for p in self.model.parameters())], dtype=torch.float64)
        if not self.args.ddp:
            return True
        import torch.distributed as dist

        gathered = [torch.zeros_like(checksum).to(self.device) for _ in range(self.world_size)]
        dist.all_gather(gathered, checksum.to(self.device))
        return all(torch.equal(g.cpu(), checksum) for g in gathered)

    # ---------------------------------------------------------------- output
    def logMetrics(self, epoch_ndx: int, mode_str: str, metrics: dict[str, float]) -> None:
        if self.rank != 0:
            return
        if not self.args.quiet:
            log.info("E%d %s %.4f loss, %.1f%% correct (%.1f%% of %d nodules, %.1f%% of %d others), precision %.3f, "
                     "recall %.3f, F1 %.3f", epoch_ndx, mode_str, metrics["loss/all"], metrics["correct/all"],
                     metrics["correct/pos"], metrics["count/pos"], metrics["correct/neg"], metrics["count/neg"],
                     metrics["pr/precision"], metrics["pr/recall"], metrics["pr/f1_score"])
        self.initTensorboardWriters()
        writer = getattr(self, f"{mode_str}_writer")
        for key, value in metrics.items():
            if not key.startswith("count/"):
                writer.add_scalar(key, value, self.totalTrainingSamples_count)
        writer.flush()

    def checkpoint_path(self) -> Path:
        return Path(self.args.runs_dir) / self.args.tb_prefix / "models" / f"{self.time_str}.{self.args.comment}.state"

    def saveModel(self, epoch_ndx: int, isBest_bool: bool) -> None:
        """State dict (`.module` unwrapped under DDP), optimizer, epoch, argv; the file's sha256 in the log."""
        model = getattr(self.model, "module", self.model)
        state = {"model_state": model.state_dict(), "optimizer_state": self.optimizer.state_dict(),
                 "epoch": epoch_ndx, "totalTrainingSamples_count": self.totalTrainingSamples_count, "argv": self.argv}
        path = self.checkpoint_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()
        path.write_bytes(data)
        if isBest_bool:
            path.with_suffix(".best.state").write_bytes(data)
        log.debug("saved %s (sha256 %s)", path, hashlib.sha256(data).hexdigest())

    def progress(self, iterable, desc: str):
        """Iterate, logging an estimate of the end time at 1, 4, 16 ... batches (the book's enumerateWithEstimate)."""
        total, start, report = len(iterable), time.time(), 1
        for ndx, item in enumerate(iterable):
            yield item
            if not self.args.quiet and self.rank == 0 and ndx + 1 == report and ndx + 1 < total:
                left = (time.time() - start) / (ndx + 1) * (total - ndx - 1)
                log.info("%s %d/%d, about %.0f s left", desc, ndx + 1, total, left)
                report *= 4


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: train, and on rank 0 print the summary as one `LUNA_SUMMARY {json}` line. Used in 08_ct."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    app = LunaTrainingApp(argv)
    summary = app.main()
    if app.rank == 0:
        print(SUMMARY_PREFIX + json.dumps(summary, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
