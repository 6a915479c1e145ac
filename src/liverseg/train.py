"""Patch-based training with early stopping, resumable and preemption-safe (paper §2.9).

Patches are drawn by a TorchIO queue with a label sampler (background patches too), the
loss is margin-based label smoothing, the optimiser Adam. After every epoch the model is
validated on whole volumes (Gaussian sliding windows, `infer`), and training stops when
the validation loss has not improved for `patience` epochs or at `max_epochs`; the
weights of the lowest validation loss are kept. Where `ema_decay` is set, the weights
validated and kept are an exponential moving average of the trained ones (weight_average.py).

Resume and determinism: `checkpoint.pt` (checkpoints.py) in the output folder is rewritten atomically at
the end of every epoch, with everything needed to continue. Every epoch starts by seeding
torch, NumPy and `random` from (seed, epoch), and a fresh queue is built for it, so the
patches and augmentations of an epoch do not depend on what ran before: a run resumed from
a checkpoint ends, on the CPU, with exactly the weights of an uninterrupted run (with any
number of queue workers: their seeds derive from the main process's). A checkpoint written
for another setup (network, data, hyper-parameters) or one that cannot be read stops the
run with an InputError; it is never silently replaced.

SIGTERM (what SLURM sends before preemption) stops training after the iteration in
progress; the epoch in progress is abandoned (a half-consumed patch queue cannot be
saved, so no mid-epoch state could resume deterministically) and the process exits with
status 143, leaving `checkpoint.pt` at the last completed epoch.

Outputs (`model.pt`, `history.tsv`, `curves.png`) are written only when training ends,
so that their presence means a finished model.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torchio as tio
from torch.utils.data import DataLoader
from tqdm import tqdm

from . import augment
from .checkpoints import (
    CHECKPOINT_NAME,
    TrainingState,
    cpu_copy,
    load_checkpoint,
    network_from_spec,
    save_checkpoint,
    write_model,
)
from .config import out_channels, schema_default
from .devices import autocast_dtype, autocast_for, setup_torch
from .encoders import check_encoder_source, load_2d_encoder
from .errors import ConfigError, InputError
from .infer import blend_windows, sliding_window_logits
from .io import write_tsv
from .learning import DICE_PREFIX, dice_classes, kept_row
from .losses import MarginLabelSmoothing
from .metrics import dice
from .sampling import LabelSampler, PatchSubjectsDataset
from .weight_average import WeightAverage

SIGTERM_EXIT = 143  # 128 + SIGTERM, what a shell reports for a process ended by SIGTERM
_ALL_WINDOWS = 2**31  # a sliding-window batch size that holds every window of a volume
POLY_EXPONENT = 0.9  # nnU-Net's PolyLRScheduler
# Keys whose change does not invalidate a checkpoint: they decide when or how fast
# training runs, not what a given epoch computes.
RESUMABLE_CHANGES = ("max_epochs", "patience", "num_workers", "keep_checkpoint", "val_interval")


@dataclass(frozen=True)
class TrainingConfig:
    """The `training` section of the config (workflow/schemas/config.schema.yaml documents
    and checks each key; keys left out take the schema's defaults)."""

    learning_rate: float
    lr_schedule: str
    batch_size: int
    max_epochs: int
    patience: int
    iterations_per_epoch: int
    samples_per_volume: int
    queue_length: int
    label_probabilities: dict
    num_workers: int
    keep_checkpoint: bool
    batchnorm_recalibration: int
    ema_decay: float
    val_interval: int
    precision: str

    @classmethod
    def from_mapping(cls, training: Mapping) -> TrainingConfig:
        """The section as checked by the schema; the keys it leaves out take the schema's defaults."""
        values = {f.name: schema_default(f"training.{f.name}") for f in fields(cls) if f.name not in training}
        return cls(**values, **training)

    def epoch_learning_rate(self, epoch: int) -> float:
        """The learning rate of epoch `epoch` (1-based): constant, or nnU-Net's polynomial
        decay over max_epochs, which lets a short training settle instead of ending on a
        swing (docs/reproduction.md)."""
        if self.lr_schedule == "constant":
            return self.learning_rate
        return self.learning_rate * (1 - (epoch - 1) / self.max_epochs) ** POLY_EXPONENT

    def validates(self, epoch: int) -> bool:
        """Whether epoch `epoch` (1-based) is validated: every `val_interval`-th and the last,
        as MONAI's tutorials do; only validated epochs can be kept or stop the training."""
        return epoch % self.val_interval == 0 or epoch >= self.max_epochs

    def sampler_probabilities(self, task: str) -> dict[int, float]:
        """Class index -> patch-centre probability weight, for the task's classes.

        Raises ConfigError when every weight of the task's classes is 0 (which the schema
        cannot tell: it depends on the model's task)."""
        names = augment.class_names(task)
        weights = {i: float(self.label_probabilities[name]) for i, name in enumerate(names)}
        if not any(weights.values()):
            raise ConfigError(f"training.label_probabilities: all weights of the {task} task's classes {names} are 0")
        return weights


@dataclass(frozen=True)
class TrainingJob:
    """Everything one training run reads, built once by `training_job` from the config the
    schema validated (sections as in workflow/schemas/config.schema.yaml).

    Attributes:
        model_spec: the model's config entry with its patch size resolved: network
            ("ahnet" | "dynunet"), task ("multiclass" | "liver" | "tumor"), patch_size (3 ints).
        training: the `training` section.
        loss: the `loss` section (margin, alpha, dice_weight).
        augmentation: the `augmentation` section (a probability per augmentation).
        inference: the `inference` section (overlap, mode, sw_batch_size, precision), for
            the validation's sliding windows and the BatchNorm recalibration.
        ahnet: the `ahnet` section (layers, psp_block_num, encoder, imagenet_weights).
        dynunet: the `dynunet` section (filters).
        median_spacing: the training subjects' median voxel spacing (DynUNet's plan).
        seed: the job's seed (jobs.job_seed): initial weights, patches, augmentations.
        encoder_path: an AHNet's 2D encoder file, the one `ahnet.encoder` names
            (encoders.py); None for "none" and for a DynUNet.
        device: cpu, cuda or cuda:N (None: CUDA when available).
        threads: torch's CPU threads (None: every CPU this process may use).
    """

    model_spec: dict
    training: TrainingConfig
    loss: dict
    augmentation: dict
    inference: dict
    ahnet: dict
    dynunet: dict
    median_spacing: tuple[float, ...]
    seed: int
    encoder_path: str | None = None
    device: str | None = None
    threads: int | None = None


def training_job(
    config: Mapping,
    model_spec: Mapping,
    *,
    median_spacing: Sequence[float],
    seed: int,
    encoder_path: str | os.PathLike | None = None,
    device: str | None = None,
    threads: int | None = None,
) -> TrainingJob:
    """The TrainingJob of one model from the validated config (config.check_config).

    Args:
        config: the whole config, validated and with the schema's defaults filled in.
        model_spec: the model's entry of `models`, its patch_size resolved to 3 ints.
        median_spacing: the training subjects' median voxel spacing.
        seed: the job's seed.
        encoder_path: the encoder file an AHNet's `ahnet.encoder` needs; ignored for a DynUNet.
        device: cpu, cuda or cuda:N (None: CUDA when available).
        threads: torch's CPU threads (None: every CPU this process may use).

    Raises:
        ConfigError: an AHNet's encoder setting and file disagree (only "none" starts
            from random weights), or an unknown task.
    """
    network = str(model_spec["network"])
    if network == "ahnet":  # an encoder setting never starts from random weights unless it says "none"
        check_encoder_source(config["ahnet"]["encoder"], encoder_path)
    augment.class_names(str(model_spec["task"]))  # checks the task
    return TrainingJob(
        model_spec={
            "network": network,
            "task": str(model_spec["task"]),
            "patch_size": [int(s) for s in model_spec["patch_size"]],
        },
        training=TrainingConfig.from_mapping(config["training"]),
        loss=_plain(config["loss"]),
        augmentation=_plain(config["augmentation"]),
        inference=_plain(config["inference"]),
        ahnet=_plain(config["ahnet"]),
        dynunet=_plain(config["dynunet"]),
        median_spacing=tuple(float(s) for s in median_spacing),
        seed=int(seed),
        encoder_path=str(encoder_path) if network == "ahnet" and encoder_path is not None else None,
        device=device,
        threads=threads,
    )


def _finished(state: TrainingState, cfg: TrainingConfig) -> bool:
    """Early stopping or the epoch cap (judged with the current config, so that a
    finished run resumed with a larger max_epochs or patience goes on)."""
    return state.since_best >= cfg.patience or state.epoch >= cfg.max_epochs


class TrainingInterrupted(Exception):
    """SIGTERM arrived; raised between iterations."""


def train_model(
    train_records: Sequence[Mapping],
    val_records: Sequence[Mapping],
    job: TrainingJob,
    out_dir: str | os.PathLike,
) -> None:
    """Train one model; write model.pt, history.tsv and curves.png to `out_dir`.

    Resumes from out_dir/checkpoint.pt when present. Each epoch: `_on_epoch_start` (seeds),
    the training steps; on a validated epoch (every `val_interval`-th and the last) the
    BatchNorm recalibration where configured and the validation; `_on_epoch_end` (best
    weights, history), the checkpoint.

    Raises:
        InputError: no training or validation subjects, a subject's files, a checkpoint
            that cannot be read or was written for another setup.
        SystemExit(143): SIGTERM; the checkpoint holds the last completed epoch.
    """
    if not train_records:
        raise InputError("train_model: no training subjects")
    if not val_records:
        raise InputError("train_model: no validation subjects (early stopping needs them)")
    cfg, task, patch_size = job.training, job.model_spec["task"], job.model_spec["patch_size"]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = setup_torch(job.device, job.threads)
    spec = _network_spec(job)
    fingerprint = _fingerprint(job, spec, train_records, val_records)
    # Build everything that reads data first: a bad file stops the job before training.
    dataset, sampler = training_patches(train_records, task, patch_size, job.augmentation, cfg)
    validation = [_load_volume(r, task) for r in val_records]

    _seed_everything(job.seed)
    net = _build_network(spec, job.encoder_path).to(device)
    if device.type == "cpu" and autocast_dtype(device, cfg.precision) == torch.bfloat16:
        # oneDNN's bfloat16 convolutions run faster channels-last: an AHNet step at 64x64x32
        # 0.55-0.65 s against 0.75 s (float32: channels-last is the slower, docs/performance.md).
        net = net.to(memory_format=torch.channels_last_3d)
    criterion, optimizer, scaler = optimisation(net, cfg.learning_rate, job.loss, device, cfg.precision)
    average = WeightAverage(net, cfg.ema_decay) if cfg.ema_decay else None
    evaluated = average.averaged if average else net  # the weights validated and kept
    state = TrainingState(history=[])
    checkpoint = out_dir / CHECKPOINT_NAME
    if checkpoint.exists():
        state = load_checkpoint(checkpoint, fingerprint, net, optimizer, scaler, average)
        _log(f"resuming from {checkpoint} after epoch {state.epoch}")

    with _sigterm_flag() as stop:
        try:
            while not _finished(state, cfg):
                epoch = state.epoch + 1
                start = _on_epoch_start(job.seed, epoch)
                for group in optimizer.param_groups:  # from the epoch alone, so a resumed run gets the same rate
                    group["lr"] = cfg.epoch_learning_rate(epoch)
                steps = _train_epoch(
                    net, dataset, sampler, cfg, criterion, optimizer, scaler, device, epoch, stop, average
                )
                scores = None  # (loss, Dice per class) of a validated epoch
                if cfg.validates(epoch):
                    if cfg.batchnorm_recalibration:
                        _recalibrate_on_training_volumes(evaluated, train_records, job, epoch, device)
                    scores = _validate(evaluated, validation, criterion, spec, job.inference, device, stop)
                _on_epoch_end(state, epoch, evaluated, optimizer, steps, scores, spec["class_names"][1:], start)
                if cfg.keep_checkpoint or not _finished(state, cfg):  # else the last one would be deleted at once
                    save_checkpoint(checkpoint, fingerprint, net, optimizer, scaler, state, average)
                _log_epoch(state.history[-1], steps, validated=scores is not None)
        except TrainingInterrupted:
            _log(f"SIGTERM: stopped; {checkpoint} holds epoch {state.epoch}; rerun to resume")
            raise SystemExit(SIGTERM_EXIT) from None

    write_model(out_dir / "model.pt", spec, state)
    history = pd.DataFrame(state.history)
    write_tsv(out_dir / "history.tsv", history)
    plot_curves(history, out_dir / "curves.png", title=f"{spec['network']} {task}")
    if not cfg.keep_checkpoint:
        checkpoint.unlink(missing_ok=True)


def _network_spec(job: TrainingJob) -> dict:
    """What model.pt records to rebuild the network (checkpoints.network_from_spec)."""
    task = job.model_spec["task"]
    return {
        "network": job.model_spec["network"],
        "task": task,
        "out_channels": out_channels(task),
        "class_names": augment.class_names(task),
        "patch_size": job.model_spec["patch_size"],
        "ahnet_cfg": job.ahnet,
        "dynunet_cfg": job.dynunet,
        "median_spacing": list(job.median_spacing),
    }


def _fingerprint(job: TrainingJob, spec: dict, train_records, val_records) -> dict:
    """What a checkpoint must have been written for to resume from it."""
    return {
        "spec": spec,
        "seed": job.seed,
        "loss": job.loss,
        "augmentation": job.augmentation,
        "training": {k: _plain(v) for k, v in asdict(job.training).items() if k not in RESUMABLE_CHANGES},
        "train": [str(r["subject"]) for r in train_records],
        "validation": [str(r["subject"]) for r in val_records],
        "encoder": None if job.encoder_path is None else os.path.basename(job.encoder_path),
    }


def _on_epoch_start(seed: int, epoch: int) -> float:
    """Seed torch, NumPy and `random` from (seed, epoch); the epoch's start time."""
    _seed_everything(_epoch_seed(seed, epoch))
    return time.perf_counter()


def _recalibrate_on_training_volumes(net, train_records, job: TrainingJob, epoch: int, device) -> None:
    """recalibrate_batchnorm on `batchnorm_recalibration` training volumes drawn for the epoch."""
    count = min(job.training.batchnorm_recalibration, len(train_records))
    volumes = random.Random(_epoch_seed(job.seed, epoch)).sample(list(train_records), count)
    task, patch_size = job.model_spec["task"], job.model_spec["patch_size"]
    recalibrate_batchnorm(net, (_load_volume(r, task)[1] for r in volumes), patch_size, job.inference, device)


def _on_epoch_end(
    state: TrainingState,
    epoch: int,
    net,
    optimizer,
    steps: StepTimes,
    scores: tuple | None,
    class_names: Sequence[str],
    start: float,
) -> None:
    """On a validated epoch (`scores`: its loss and Dice per class), keep the weights of the
    lowest validation loss and count the epochs since; add the epoch's history row (an
    epoch not validated has empty validation columns)."""
    val_loss, val_dice = scores if scores is not None else (math.nan, dict.fromkeys(class_names, math.nan))
    improved = scores is not None and (
        state.best_state is None or (math.isfinite(val_loss) and val_loss < state.best_loss)
    )
    if improved:
        state.best_loss, state.best_epoch, state.since_best = val_loss, epoch, 0
        state.best_state = cpu_copy(net.state_dict())
    elif scores is not None:
        state.since_best = epoch - state.best_epoch
    state.history.append(
        {
            "epoch": epoch,
            "train_loss": steps.loss,
            "val_loss": val_loss,
            **{f"val_dice_{name}": value for name, value in val_dice.items()},
            "val_dice_mean": float(np.mean(list(val_dice.values()))),
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - start,
            "data_seconds": steps.data_seconds,
            "step_seconds": steps.step_seconds,
            "is_best": improved,
        }
    )
    state.epoch = epoch


def _log_epoch(row: Mapping, steps: StepTimes, validated: bool) -> None:
    scores = (
        f"val loss {row['val_loss']:.4f}, val Dice {row['val_dice_mean']:.3f}{' (best)' if row['is_best'] else ''}"
        if validated
        else "not validated"
    )
    _log(
        f"epoch {row['epoch']}: train loss {steps.loss:.4f}, {scores}, "
        f"waited for data {steps.wait_share:.0%} of the training loop's time"
    )


def plot_curves(history: pd.DataFrame, path: str | os.PathLike, title: str = "") -> None:
    """Training and validation loss, and validation Dice per class, against the epoch (the
    validated epochs joined)."""
    from matplotlib.ticker import MaxNLocator

    from .figures import plt, save

    # every `val_interval`-th epoch and the last: the Dice is set there even where the loss diverged
    validated = history[history[f"{DICE_PREFIX}mean"].notna()]
    fig, (ax_loss, ax_dice) = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    ax_loss.plot(history["epoch"], history["train_loss"], marker="o", ms=3, label="training")
    ax_loss.plot(validated["epoch"], validated["val_loss"], marker="o", ms=3, label="validation")
    for name in dice_classes(history):
        ax_dice.plot(validated["epoch"], validated[f"{DICE_PREFIX}{name}"], marker="o", ms=3, label=name)
    kept = kept_row(history)
    for ax in (ax_loss, ax_dice):
        if kept is not None:
            ax.axvline(kept["epoch"], color="grey", ls="--", lw=1, label="best model")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax_loss.set_ylabel("loss (margin-based label smoothing)")
    ax_dice.set_ylabel("validation Dice")
    ax_dice.set_ylim(0, 1)
    for ax in (ax_loss, ax_dice):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    save(fig, path)


# --- training steps -------------------------------------------------------------------


def training_patches(
    records: Sequence[Mapping], task: str, patch_size, augmentation: Mapping, cfg: TrainingConfig
) -> tuple[tio.SubjectsDataset, LabelSampler]:
    """The augmented training subjects and the label sampler that draws patches from them
    (each subject's distribution of patch centres is computed with it, in the workers)."""
    sampler = LabelSampler(patch_size, label_name="label", label_probabilities=cfg.sampler_probabilities(task))
    dataset = PatchSubjectsDataset(
        [augment.torchio_subject(r, task) for r in records],
        augment.training_transform(augmentation, patch_size),
        sampler,
    )
    return dataset, sampler


def patch_batches(dataset: tio.SubjectsDataset, sampler: LabelSampler, cfg: TrainingConfig) -> Iterator[dict]:
    """Endless batches of patches from a fresh TorchIO queue."""
    queue = tio.Queue(
        dataset,
        max_length=cfg.queue_length,
        samples_per_volume=cfg.samples_per_volume,
        sampler=sampler,
        num_workers=cfg.num_workers,
        shuffle_subjects=True,
        shuffle_patches=True,
    )
    # num_workers=0: the queue itself runs workers; the loader only pops patches from it.
    return iter(DataLoader(queue, batch_size=cfg.batch_size, sampler=_Forever(), num_workers=0))


def optimisation(
    net, learning_rate: float, loss: Mapping, device: torch.device, precision: str = "auto"
) -> tuple[MarginLabelSmoothing, torch.optim.Adam, torch.amp.GradScaler]:
    """The loss (MbLS, with a soft Dice term where `loss` has a dice_weight), Adam and the
    gradient scaler (active where `precision` computes in float16: CUDA's "auto") that
    train `net`."""
    criterion = MarginLabelSmoothing(
        margin=float(loss["margin"]),
        alpha=float(loss["alpha"]),
        dice_weight=float(loss["dice_weight"]),
    )
    # fused: one kernel over all parameters, 4x faster on the CPU than the per-tensor loop
    # (AHNet's 22.6 M parameters: 30 ms instead of 120 ms per step).
    optimizer = torch.optim.Adam(net.parameters(), lr=float(learning_rate), fused=True)
    scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype(device, precision) == torch.float16)
    return criterion, optimizer, scaler


def optimiser_step(net, batch: Mapping, criterion, optimizer, scaler, device, precision: str = "auto") -> torch.Tensor:
    """One optimiser step on a batch, in `precision` (devices.autocast_dtype); returns its
    loss, detached.

    Nothing here waits for the device: on a GPU this queues the step's kernels and returns
    (fused Adam takes the gradient scaler's inf check as a tensor, so the scaler does not
    read it back either), and the host prepares the next batch while the GPU computes."""
    images = batch["image"][tio.DATA].to(device)
    targets = batch["label"][tio.DATA].to(device).long()
    optimizer.zero_grad(set_to_none=True)
    with autocast_for(device, precision):
        logits = net(images)
    loss = criterion(logits.float(), targets)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


@dataclass(frozen=True)
class StepTimes:
    """An epoch's training steps: their mean loss, and where their time went."""

    loss: float
    data_seconds: float  # the device idle for want of a batch: queue fills, the main process's draws, collation
    step_seconds: float  # the device in steps: the batch's copy to it, forward, backward, the optimiser update

    @property
    def wait_share(self) -> float:
        """The share of the training loop's time spent waiting for data (the GPU idles)."""
        total = self.data_seconds + self.step_seconds
        return self.data_seconds / total if total else float("nan")


class _StepClock:
    """The seconds the device spends in steps. A CPU step runs while the host waits for
    it, so the host's clock times it; a GPU step runs after the host has queued it, so
    CUDA events on the stream time it, read once, at the end."""

    def __init__(self, device: torch.device):
        self._stream = torch.cuda.current_stream(device) if device.type == "cuda" else None
        self._events: list = []
        self._seconds = 0.0

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        if self._stream is None:
            start = time.perf_counter()
            yield
            self._seconds += time.perf_counter() - start
            return
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record(self._stream)
        yield
        end.record(self._stream)
        self._events.append((begin, end))

    def seconds(self) -> float:
        if self._stream is not None:
            self._stream.synchronize()
            self._seconds = sum(begin.elapsed_time(end) for begin, end in self._events) / 1000
        return self._seconds


def run_steps(
    net,
    batches: Iterator[dict],
    iterations: int,
    criterion,
    optimizer,
    scaler,
    device,
    *,
    stop: threading.Event | None = None,
    desc: str = "steps",
    average: WeightAverage | None = None,
    precision: str = "auto",
) -> StepTimes:
    """`iterations` optimiser steps on batches popped from `batches`, each followed by
    `average`'s update where given; the time the device spent in steps (and updates), and
    the rest of the loop's time, spent waiting for batches.

    A step's loss is read only after the next step is queued (the progress bar shows the
    previous step's), so on a GPU the host makes the next batch while the current step
    runs; the losses are summed at the end, in step order, in float64."""
    stop = stop if stop is not None else threading.Event()
    net.train()
    clock = _StepClock(device)
    losses: list[torch.Tensor] = []
    progress = tqdm(
        range(iterations),
        desc=desc,
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
        mininterval=1.0,
    )
    start = time.perf_counter()
    for _ in progress:
        try:
            batch = next(batches)
        except Exception:
            if stop.is_set():  # SIGTERM sent to the whole job also ends the queue's workers
                raise TrainingInterrupted from None
            raise
        with clock.step():
            losses.append(optimiser_step(net, batch, criterion, optimizer, scaler, device, precision))
            if average is not None:
                average.update(net)
        if len(losses) > 1:
            progress.set_postfix(loss=f"{float(losses[-2]):.4f}")
        if stop.is_set():
            progress.close()
            raise TrainingInterrupted
    stepped = clock.seconds()  # on a GPU this waits for the last step's update, so the loop's time includes it
    elapsed = time.perf_counter() - start
    return StepTimes(sum(float(loss) for loss in losses) / iterations, max(elapsed - stepped, 0.0), stepped)


def _train_epoch(
    net,
    dataset,
    sampler,
    cfg: TrainingConfig,
    criterion,
    optimizer,
    scaler,
    device,
    epoch: int,
    stop: threading.Event,
    average: WeightAverage | None,
) -> StepTimes:
    """`iterations_per_epoch` optimiser steps on batches popped from a fresh queue."""
    return run_steps(
        net,
        patch_batches(dataset, sampler, cfg),
        cfg.iterations_per_epoch,
        criterion,
        optimizer,
        scaler,
        device,
        stop=stop,
        desc=f"epoch {epoch}",
        average=average,
        precision=cfg.precision,
    )


def recalibrate_batchnorm(net, images: Iterable[np.ndarray], patch_size, window: Mapping, device) -> None:
    """Replace BatchNorm's running statistics by their plain mean over whole training
    volumes ("precise BN"), each seen as inference sees it: its sliding windows, all of
    them in one batch. No weight changes here.

    With large steps (few iterations, a high learning rate: the CPU demo) the running
    averages lag far behind the weights, and a network trained on batches of two small
    patches normalises its deepest features (a few voxels each) by the batch's own
    statistics; re-estimated on label-sampled patches it still predicted background
    everywhere on whole volumes, re-estimated on whole volumes it segments the liver.
    """
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # None: a cumulative average over the batches that follow
    net.train()
    for image in images:
        blend_windows(
            net,
            image,
            patch_size,
            overlap=window["overlap"],
            mode=window["mode"],
            sw_batch_size=_ALL_WINDOWS,
            device=device,
            precision=window.get("precision", "auto"),
        )
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


def _validate(
    net, validation, criterion, spec: Mapping, window: Mapping, device, stop: threading.Event
) -> tuple[float, dict[str, float]]:
    """Mean whole-volume loss and per-class mean Dice over the validation subjects.

    Dice follows the challenge's rule (metrics.dice): a subject whose volume and prediction
    both lack a class scores 1 for it, so a validation subject without tumour counts in the
    tumour mean (it scores 1 when no tumour is predicted, 0 when one is)."""
    losses, dices = [], []
    patch_size, names = spec["patch_size"], spec["class_names"][1:]
    for _subject, image, target in validation:
        if stop.is_set():
            raise TrainingInterrupted
        logits = sliding_window_logits(
            net,
            image,
            patch_size,
            overlap=window["overlap"],
            mode=window["mode"],
            sw_batch_size=window["sw_batch_size"],
            device=device,
            precision=window.get("precision", "auto"),
        )
        truth = torch.from_numpy(target).to(device).long()[None, None]
        with torch.no_grad():
            losses.append(float(criterion(logits, truth)))
        prediction = logits.argmax(dim=1)[0].cpu().numpy()
        dices.append([dice(target == c, prediction == c) for c in range(1, logits.shape[1])])
    per_class = np.array(dices, dtype=float)
    return float(np.mean(losses)), {name: float(np.mean(per_class[:, i])) for i, name in enumerate(names)}


def _load_volume(record: Mapping, task: str) -> tuple[str, np.ndarray, np.ndarray]:
    """A subject as (id, raw image, task target): validation subjects are loaded once for all
    epochs, the BatchNorm recalibration volumes at each epoch."""
    subject = augment.torchio_subject(record, task)  # checks the record and the files
    image = subject["image"].data[0].numpy()
    target = subject["label"].data[0].numpy()
    if image.shape != target.shape:
        raise InputError(f"{record['label']}: shape {target.shape} differs from its image's {image.shape}")
    return str(record["subject"]), image, target


class _Forever(torch.utils.data.Sampler):
    """Indices without end: a queue ignores the index, and an epoch is counted in
    iterations, so every batch is full whatever the queue's nominal length."""

    def __iter__(self) -> Iterator[int]:
        index = 0
        while True:
            yield index
            index += 1


# --- network --------------------------------------------------------------------------


def _build_network(spec: Mapping, encoder_path: str | None) -> torch.nn.Module:
    """The spec's network, its encoder copied from `encoder_path`'s 2D network when given."""
    net = network_from_spec(spec)
    if encoder_path is not None:
        from .nets import transfer_encoder

        transfer_encoder(net, load_2d_encoder(spec["ahnet_cfg"]["encoder"], encoder_path))
    return net


# --- randomness, devices, signals ------------------------------------------------------


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # seeds every CUDA device too


@contextlib.contextmanager
def _sigterm_flag() -> Iterator[threading.Event]:
    """An event set by SIGTERM while training runs; the previous handler comes back after."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals reach the main thread only; nothing to install
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)


def _plain(value):
    """Config values as plain Python (lists, dicts, numbers), comparable and loadable."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _log(message: str) -> None:
    tqdm.write(f"[train] {message}", file=sys.stderr)
