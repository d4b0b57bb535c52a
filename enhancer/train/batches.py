"""A training run's data: the set checked and split into training and validation sequences, and
each step's batch made on background threads, the same whatever their number."""
from __future__ import annotations

import os
import queue
import threading
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from enhancer.data.dataset import ClipDataset
from enhancer.train.config import TrainConfig, TrainingError

_PREPARE_HINT = "make one with `enhancer prepare`"


def _check_set(path: str | Path) -> None:
    """Refuse, before it is loaded, a file that is not a training set as `enhancer prepare`
    writes one: an .npz (zip) archive holding the arrays hr and lq."""
    p = Path(path)
    if not p.exists():
        raise TrainingError("no such training set", path=str(p), hint=_PREPARE_HINT)
    if p.is_dir():
        raise TrainingError("is a folder, not a training set", path=str(p), hint="give the .npz that `enhancer "
                            "prepare` wrote")
    try:
        with zipfile.ZipFile(p) as z:
            names = set(z.namelist())
    except (zipfile.BadZipFile, OSError):
        raise TrainingError("not a training set: not an .npz archive, or one cut short", path=str(p),
                            hint=_PREPARE_HINT) from None
    if not {"hr.npy", "lq.npy"} <= names:
        raise TrainingError("not a training set: an .npz without the arrays hr and lq", path=str(p),
                            hint=_PREPARE_HINT)


def _read_set(paths: list, cfg: TrainConfig) -> ClipDataset:
    for p in paths:
        _check_set(p)
    where = ", ".join(map(str, paths))
    try:
        data = ClipDataset(paths)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:  # damaged inside its archive
        raise TrainingError(f"the training set is corrupt ({type(e).__name__}: {e})", path=where,
                            hint=_PREPARE_HINT) from None
    except (ValueError, KeyError) as e:
        raise TrainingError(f"cannot read the training set ({e})", path=where, hint=_PREPARE_HINT) from None
    if data.scale != cfg.scale:
        raise TrainingError(f"the training set is x{data.scale}, the config asks for x{cfg.scale}", path=where)
    return data


def _load_data(cfg: TrainConfig) -> tuple[ClipDataset, np.ndarray, ClipDataset, np.ndarray]:
    """The training set and its training indices, the validation set and its indices: the last
    ``val_sequences`` of the training set (never trained on), or with ``val_data`` the first
    ``val_sequences`` of that set, and all of the training set is trained on."""
    paths = [cfg.data] if isinstance(cfg.data, (str, Path)) else list(cfg.data)
    data = _read_set(paths, cfg)
    if cfg.val_data:
        val = _read_set([cfg.val_data], cfg)
        if not len(data):
            raise TrainingError("the training set has no sequences", path=", ".join(map(str, paths)))
        return data, np.arange(len(data)), val, np.arange(min(len(val), cfg.val_sequences))
    if len(data) <= cfg.val_sequences:
        raise TrainingError(f"the training set has {len(data)} sequences; need more than val_sequences",
                            path=", ".join(map(str, paths)))
    return data, np.arange(0, len(data) - cfg.val_sequences), data, np.arange(len(data) - cfg.val_sequences, len(data))


class _Batches:
    """Makes the batches of steps ``first``, ``first + 1``, ... on ``threads`` background threads
    (aligning stacks and cropping overlap with the model's step; DIS flow and the warps release
    the GIL, so beside a GPU several threads keep it fed). Thread j makes the steps congruent to j
    modulo ``threads`` and :meth:`get` takes them in step order; batch k is drawn with a generator
    seeded by (seed, rank, k) alone, so the batches do not depend on the thread count."""

    def __init__(self, data: ClipDataset, cfg: TrainConfig, indices: np.ndarray, radius: int, fusion: bool,
                 rank: int, first: int, threads: int = 1):
        self.data, self.cfg, self.indices, self.radius, self.fusion = data, cfg, indices, radius, fusion
        self.rank, self.first, self.next = rank, first, first
        n = max(1, threads)
        self.queues: list[queue.Queue] = [queue.Queue(maxsize=2) for _ in range(n)]
        self.threads = [threading.Thread(target=self._work, args=(j, first + j, n), name=f"batches-{j}", daemon=True)
                        for j in range(n)]
        self.done = threading.Event()

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def __enter__(self) -> "_Batches":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def make(self, step: int):
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, self.rank, step])
        if self.fusion:
            return self.data.aligned_batch(rng, cfg.batch, self.radius, cfg.frames_out, cfg.crop, indices=self.indices,
                                           misalign=cfg.misalign)
        return self.data.batch(rng, cfg.batch, cfg.frames_out + 2 * self.radius, cfg.frames_out, cfg.crop,
                               indices=self.indices)

    def _work(self, j: int, step: int, stride: int) -> None:
        q = self.queues[j]
        try:
            import cv2

            cv2.setNumThreads(1)  # one core per batch thread, the others for the model
        except BaseException as e:  # handed to the training loop, which raises it
            q.put(e)
            return
        while not self.done.is_set():
            try:
                item = self.make(step)
            except BaseException as e:  # handed to the training loop, which raises it
                item = e
            while not self.done.is_set():
                try:
                    q.put(item, timeout=0.2)
                    break
                except queue.Full:
                    continue
            step += stride

    def get(self):
        item = self.queues[(self.next - self.first) % len(self.queues)].get()
        self.next += 1
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        """Stop, and wait for the batches in the making: a thread still inside OpenCV when the
        interpreter exits aborted the process ("terminate called without an active exception")
        after a finished run."""
        self.done.set()
        for t in self.threads:
            if t.is_alive() and t is not threading.current_thread():
                t.join(timeout=60)


def _loader_threads(cfg: TrainConfig, device: torch.device, world: int) -> int:
    """Batch threads: the config's, else 1 on the CPU (the cores train the model) and, beside a
    GPU, up to 8 of this process's share of the cores."""
    if cfg.loader_threads > 0:
        return cfg.loader_threads
    if device.type != "cuda":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    return max(1, min(8, cores // max(1, world) - 1))
