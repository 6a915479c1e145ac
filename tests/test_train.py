"""Training: outputs, early stopping, resume after a kill, SIGTERM, bad checkpoints.

Tiny networks on 40 x 40 x 12 phantoms; a DynUNet with 4 base filters unless said
otherwise. The resume test runs the job in a subprocess, kills it after its first
checkpoint, reruns it and compares every tensor with an uninterrupted run.
"""

from __future__ import annotations

import copy
import math
import os
import pickle
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchio as tio
from conftest import phantom, training_job_of, write_pair

from liverseg.checkpoints import load_model
from liverseg.config import SCHEMA_PATH, validate_config
from liverseg.errors import ConfigError, InputError
from liverseg.infer import predict_volume
from liverseg.pretrain import load_encoder, pretrain_encoder
from liverseg.train import TrainingJob, optimisation, run_steps, train_model

SPACING = (0.8, 0.8, 3.0)
BASE = {
    "model": {"network": "dynunet", "task": "multiclass", "patch_size": [32, 32, 16]},
    "ahnet": {"layers": [1, 1, 1, 1], "psp_block_num": 1, "encoder": "none"},
    "dynunet": {"filters": 4},
    "training": {
        "learning_rate": 2e-3,
        "batch_size": 2,
        "max_epochs": 3,
        "patience": 10,
        "iterations_per_epoch": 3,
        "samples_per_volume": 2,
        "queue_length": 4,
        "num_workers": 0,
        "label_probabilities": {"background": 1, "liver": 1, "tumor": 2},
        "keep_checkpoint": True,
    },
    "loss": {"margin": 10, "alpha": 0.1},
    "augmentation": {
        "flip": 0.5,
        "affine": 0.5,
        "contrast": 0.5,
        "gamma": 0.5,
        "bias_field": 0.5,
        "noise": 0.5,
    },
    "seed": 5,
    "median_spacing": list(SPACING),
    "inference": {"overlap": 0.5, "mode": "gaussian", "sw_batch_size": 2},
    "threads": 1,
}
SECTIONS = ("ahnet", "dynunet", "training", "loss", "augmentation", "inference")
RUNNER = """
import pickle, sys
from liverseg.train import train_model
args = pickle.load(open(sys.argv[1], "rb"))
train_model(args["train"], args["validation"], args["job"], args["out_dir"])
"""


def variant(**changes) -> dict:
    """BASE with `training` keys (or top-level keys) replaced."""
    kwargs = copy.deepcopy(BASE)
    for key, value in changes.items():
        (kwargs["training"] if key in kwargs["training"] else kwargs)[key] = value
    return kwargs


def make_job(kwargs: dict, encoder_path=None) -> TrainingJob:
    """The TrainingJob of `kwargs` as the workflow builds it: the config sections through
    the schema (its defaults filled in), then training_job."""
    config = {"dataset": {"source": "synthetic"}, "models": {"model": kwargs["model"]}}
    config.update({section: kwargs[section] for section in SECTIONS})
    validate_config(config, SCHEMA_PATH)  # fills kwargs' sections in place
    return training_job_of(kwargs, encoder_path)


def job(**changes) -> TrainingJob:
    return make_job(variant(**changes))


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("atlas")
    out = []
    for n in range(4):
        image, label = phantom(seed=n)
        write_pair(root, n, image, label, np.diag([*SPACING, 1.0]))
        out.append(
            {
                "subject": f"im{n}",
                "image": str(root / "imagesTr" / f"im{n}.nii.gz"),
                "label": str(root / "labelsTr" / f"lb{n}.nii.gz"),
            }
        )
    return {"train": out[:3], "validation": out[3:]}


@pytest.fixture(scope="module")
def reference(records, tmp_path_factory) -> Path:
    """An uninterrupted three-epoch run, checkpoint kept."""
    out = tmp_path_factory.mktemp("reference")
    train_model(records["train"], records["validation"], job(), out)
    return out


def ckpt(path: Path) -> dict:
    return torch.load(path / "checkpoint.pt", map_location="cpu", weights_only=True)


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_outputs(reference, records):
    history = pd.read_csv(reference / "history.tsv", sep="\t")
    assert list(history.columns) == [
        "epoch",
        "train_loss",
        "val_loss",
        "val_dice_liver",
        "val_dice_tumor",
        "val_dice_mean",
        "lr",
        "seconds",
        "data_seconds",
        "step_seconds",
        "is_best",
    ]
    assert history["epoch"].tolist() == [1, 2, 3]
    assert history[["train_loss", "val_loss"]].notna().all().all()
    # the training steps' time, split into waiting for data and stepping, is part of the epoch's
    assert (history["data_seconds"] > 0).all() and (history["step_seconds"] > 0).all()
    assert (history["data_seconds"] + history["step_seconds"] < history["seconds"]).all()
    assert (reference / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    net, spec = load_model(reference / "model.pt")
    assert not net.training
    assert spec["task"] == "multiclass" and spec["out_channels"] == 3 and spec["patch_size"] == [32, 32, 16]
    best = history.loc[history["val_loss"].idxmin()]
    assert spec["best_epoch"] == best["epoch"] and spec["epochs"] == 3
    assert spec["best_val_loss"] == pytest.approx(best["val_loss"])
    # model.pt holds the best weights, not the last ones
    assert_same_tensors(net.state_dict(), ckpt(reference)["best_state"])
    image = np.asarray(torch.rand(40, 40, 12))
    probs = predict_volume(net, image, spec["patch_size"], **BASE["inference"])
    assert probs.shape == (3, 40, 40, 12)


def tiny_training(device: torch.device | None = None) -> tuple:
    """A one-layer network and liverseg's loss, optimiser and gradient scaler for it."""
    device = device or torch.device("cpu")
    net = torch.nn.Conv3d(1, 3, 1).to(device)
    return (net, *optimisation(net, 1e-3, {"margin": 10, "alpha": 0.1, "dice_weight": 0}, device))


def tiny_batches(delay_s: float = 0.0):
    """Endless batches of two 8x8x4 patches, each made in `delay_s` seconds."""
    while True:
        time.sleep(delay_s)
        yield {
            "image": {tio.DATA: torch.rand(2, 1, 8, 8, 4)},
            "label": {tio.DATA: torch.zeros(2, 1, 8, 8, 4)},
        }


def test_run_steps_times_the_wait_for_data_apart_from_the_steps():
    """The wait share a GPU user reads in history.tsv: time in `next(batches)` is waiting,
    time in the step (here a loss that takes 50 ms) is stepping, each counted once."""
    net, criterion, optimizer, scaler = tiny_training()

    def slow_loss(logits, targets):
        time.sleep(0.05)
        return criterion(logits, targets)

    times = run_steps(net, tiny_batches(0.2), 3, slow_loss, optimizer, scaler, torch.device("cpu"))
    assert math.isfinite(times.loss)
    assert times.data_seconds >= 0.6 and 0.15 <= times.step_seconds < 0.6
    assert times.wait_share == pytest.approx(times.data_seconds / (times.data_seconds + times.step_seconds))


def test_run_steps_reads_each_loss_after_the_next_step_is_queued():
    """What lets a GPU run a step while the host makes the next batch: the loop never
    reads a step's loss (a device-to-host copy, which waits for the step) before the next
    step is under way, and the epoch's loss is still the mean of every step's."""
    steps_made, reads = [], []  # each step's loss value; (step read, steps made by then)

    class WatchedLoss(torch.Tensor):
        def __float__(self):
            value = super().__float__()
            reads.append((steps_made.index(value) + 1, len(steps_made)))
            return value

    net, criterion, optimizer, scaler = tiny_training()

    def watched_criterion(logits, targets):
        loss = criterion(logits, targets)
        steps_made.append(loss.item())
        return loss.as_subclass(WatchedLoss)

    times = run_steps(net, tiny_batches(), 4, watched_criterion, optimizer, scaler, torch.device("cpu"))
    during = [(step, made) for step, made in reads if made < 4]
    assert during and all(made > step for step, made in during), reads  # read once the next step was made
    assert sorted({step for step, _ in reads}) == [1, 2, 3, 4]
    assert math.isfinite(times.loss)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_run_steps_on_a_gpu_times_the_idle_device_by_events():
    """On a GPU the steps are timed by CUDA events: the host's 0.2 s waits for each batch
    are time the device sat idle, its steps on a tiny network a small part of the loop."""
    device = torch.device("cuda")
    net, criterion, optimizer, scaler = tiny_training(device)
    before = net.weight.detach().clone()
    times = run_steps(net, tiny_batches(0.2), 3, criterion, optimizer, scaler, device)
    assert math.isfinite(times.loss) and not torch.equal(net.weight.detach(), before)
    assert times.data_seconds >= 0.6 and 0 < times.step_seconds < times.data_seconds


def test_same_seed_same_weights_resumed_in_process(reference, records, tmp_path):
    """One epoch, then the run continued to three (max_epochs may change on resume)."""
    train_model(records["train"], records["validation"], job(max_epochs=1), tmp_path)
    first = ckpt(tmp_path)
    assert first["epoch"] == 1 == first["best_epoch"]
    # an epoch that improved stores its weights once, for "model" and "best_state" both
    assert all(
        first["model"][k].untyped_storage().data_ptr() == first["best_state"][k].untyped_storage().data_ptr()
        for k in first["model"]
    )
    train_model(records["train"], records["validation"], job(), tmp_path)
    assert_same_tensors(ckpt(tmp_path)["model"], ckpt(reference)["model"])
    assert_same_tensors(
        load_model(tmp_path / "model.pt")[0].state_dict(),
        load_model(reference / "model.pt")[0].state_dict(),
    )


def start_job(records, out: Path, tmp_path: Path) -> subprocess.Popen:
    args = {"train": records["train"], "validation": records["validation"], "job": job(), "out_dir": str(out)}
    (tmp_path / "args.pickle").write_bytes(pickle.dumps(args))
    (tmp_path / "runner.py").write_text(RUNNER)
    with open(tmp_path / "job.log", "w") as log:  # a file, not a pipe: a full pipe would block the job
        return subprocess.Popen(
            [sys.executable, str(tmp_path / "runner.py"), str(tmp_path / "args.pickle")], stderr=log
        )


def wait_for_first_checkpoint(process: subprocess.Popen, out: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not (out / "checkpoint.pt").exists():
        assert process.poll() is None, f"job ended early: {(out.parent / 'job.log').read_text()}"
        assert time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.02)


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted_run(reference, records, tmp_path, capsys):
    out = tmp_path / "killed"
    process = start_job(records, out, tmp_path)
    wait_for_first_checkpoint(process, out)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    killed = ckpt(out)
    assert 1 <= killed["epoch"] < 3, "the job must be killed before it finishes"
    assert not (out / "model.pt").exists()  # outputs only appear at the end

    train_model(records["train"], records["validation"], job(), out)
    assert f"after epoch {killed['epoch']}" in capsys.readouterr().err
    history = pd.read_csv(out / "history.tsv", sep="\t")
    assert history["epoch"].tolist() == [1, 2, 3]
    # the epochs before the kill come from the checkpoint (wall-clock seconds included)
    done = pd.DataFrame(killed["history"])
    np.testing.assert_array_equal(history["seconds"][: len(done)], done["seconds"])
    assert_same_tensors(ckpt(out)["model"], ckpt(reference)["model"])
    assert_same_tensors(
        load_model(out / "model.pt")[0].state_dict(),
        load_model(reference / "model.pt")[0].state_dict(),
    )


def test_sigterm_checkpoints_and_exits_143(records, tmp_path, capsys):
    """SIGTERM (SLURM preemption) after the first checkpoint: training stops, exits 143
    and leaves a checkpoint that resumes. Sent to this process from a thread; a guard
    handler keeps a late signal from ending pytest."""
    out = tmp_path / "preempted"

    def preempt():
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.pt").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # the guard
    try:
        sender = threading.Thread(target=preempt)
        sender.start()
        with pytest.raises(SystemExit) as stopped:
            train_model(records["train"], records["validation"], job(max_epochs=50), out)
        sender.join()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stopped.value.code == 143
    assert "SIGTERM" in capsys.readouterr().err
    state = ckpt(out)
    assert 1 <= state["epoch"] < 50 and len(state["history"]) == state["epoch"]
    assert not (out / "model.pt").exists()
    train_model(records["train"], records["validation"], job(max_epochs=state["epoch"] + 1), out)
    assert pd.read_csv(out / "history.tsv", sep="\t")["epoch"].tolist() == list(range(1, state["epoch"] + 2))


def test_early_stopping(records, tmp_path):
    """A learning rate too small to move a float32 weight: the validation loss never
    improves after epoch 1, so training stops after `patience` more epochs; the
    checkpoint goes once the outputs are written."""
    slow = job(learning_rate=1e-30, patience=2, max_epochs=10, iterations_per_epoch=1, keep_checkpoint=False)
    train_model(records["train"], records["validation"], slow, tmp_path)
    history = pd.read_csv(tmp_path / "history.tsv", sep="\t")
    assert history["epoch"].tolist() == [1, 2, 3]
    assert history["is_best"].tolist() == [True, False, False]
    assert load_model(tmp_path / "model.pt")[1]["best_epoch"] == 1
    assert not (tmp_path / "checkpoint.pt").exists()


def test_validation_interval_trains_the_same_weights_and_keeps_a_validated_epoch(reference, records, tmp_path):
    """val_interval 2 of 3 epochs validates epochs 2 and 3 only: the same weights are
    trained, epoch 3 validates as in the reference, only a validated epoch is kept; and
    patience counts epochs, so early stopping follows the first validation past it."""

    def every_second(**changes) -> TrainingJob:
        kwargs = variant(**changes)
        kwargs["training"]["val_interval"] = 2
        return make_job(kwargs)

    train_model(records["train"], records["validation"], every_second(), tmp_path / "every2")
    history = pd.read_csv(tmp_path / "every2" / "history.tsv", sep="\t")
    validated = history["val_loss"].notna()
    assert validated.tolist() == [False, True, True]
    assert history.filter(like="val_dice_").iloc[0].isna().all()
    assert not history["is_best"].iloc[0]
    assert_same_tensors(ckpt(tmp_path / "every2")["model"], ckpt(reference)["model"])
    every = pd.read_csv(reference / "history.tsv", sep="\t")
    assert history.iloc[2]["val_loss"] == every.iloc[2]["val_loss"]
    assert load_model(tmp_path / "every2" / "model.pt")[1]["best_epoch"] in (2, 3)

    slow = every_second(learning_rate=1e-30, patience=2, max_epochs=10, iterations_per_epoch=1)
    train_model(records["train"], records["validation"], slow, tmp_path / "stopped")
    history = pd.read_csv(tmp_path / "stopped" / "history.tsv", sep="\t")
    assert history["epoch"].tolist() == [1, 2, 3, 4]
    assert history["is_best"].tolist() == [False, True, False, False]


def test_bfloat16_training_steps_in_bfloat16_and_keeps_float32_weights(records, tmp_path):
    """training.precision bfloat16 (what "auto" is on a CPU with native bfloat16): the
    steps compute in bfloat16, so the losses differ from float32's by its rounding only;
    the weights stay float32, and model.pt predicts in float32 on any machine."""
    losses = {}
    for precision in ("float32", "bfloat16"):
        out = tmp_path / precision
        kwargs = variant()
        kwargs["training"]["precision"] = precision
        train_model(records["train"], records["validation"], make_job(kwargs), out)
        losses[precision] = pd.read_csv(out / "history.tsv", sep="\t")["train_loss"].to_numpy()
    assert not np.array_equal(losses["bfloat16"], losses["float32"])  # the steps were not float32
    np.testing.assert_allclose(losses["bfloat16"], losses["float32"], rtol=0.05)

    net, spec = load_model(tmp_path / "bfloat16" / "model.pt")
    assert all(t.dtype == torch.float32 for t in net.state_dict().values() if t.is_floating_point())
    probs = predict_volume(
        net, np.asarray(torch.rand(40, 40, 12)), spec["patch_size"], **BASE["inference"], precision="float32"
    )
    np.testing.assert_allclose(probs.sum(axis=0), 1, atol=1e-5)


def test_poly_schedule_decays_the_rate_each_epoch(reference, records, tmp_path):
    """nnU-Net's poly decay: the rate of epoch e is lr x (1 - (e - 1) / max_epochs)^0.9,
    as history.tsv records it; constant (the reference) keeps the paper's fixed rate."""
    assert pd.read_csv(reference / "history.tsv", sep="\t")["lr"].tolist() == [2e-3] * 3
    kwargs = variant(max_epochs=4, iterations_per_epoch=1)
    kwargs["training"]["lr_schedule"] = "poly"
    poly = make_job(kwargs)
    expected = [2e-3 * (1 - (e - 1) / 4) ** 0.9 for e in (1, 2, 3, 4)]
    assert [poly.training.epoch_learning_rate(e) for e in (1, 2, 3, 4)] == pytest.approx(expected)
    train_model(records["train"], records["validation"], poly, tmp_path)
    assert pd.read_csv(tmp_path / "history.tsv", sep="\t")["lr"].tolist() == pytest.approx(expected)


def test_damaged_checkpoint_is_never_replaced(records, tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=r"checkpoint.pt: cannot read checkpoint .*delete it"):
        train_model(records["train"], records["validation"], job(), tmp_path)
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"not a checkpoint"


def test_checkpoint_of_another_setup_is_refused(reference, records, tmp_path):
    shutil.copy(reference / "checkpoint.pt", tmp_path / "checkpoint.pt")
    with pytest.raises(InputError, match=r"different setup \(training \(learning_rate\) changed\)"):
        train_model(records["train"], records["validation"], job(learning_rate=1e-3), tmp_path)
    with pytest.raises(InputError, match=r"different setup \(train changed\)"):
        train_model(records["train"][:2], records["validation"], job(), tmp_path)


@pytest.mark.parametrize(
    "training, message",
    [
        ({"batch_size": 0}, r"training\.batch_size: 0 is less than the minimum of 1"),
        ({"batchnorm_recalibration": -1}, r"training\.batchnorm_recalibration: -1 is less than the minimum of 0"),
        ({"ema_decay": 1}, r"training\.ema_decay: 1 is greater than or equal to the maximum of 1"),
        ({"label_probabilities": {"background": 1, "liver": 1}}, r"training\.label_probabilities\.tumor"),
        ({"epochs": 3}, r"training\.epochs: unknown key"),
    ],
)
def test_bad_training_config_is_the_schemas_to_refuse(training, message):
    """The schema checks the training section, once: the job is never built from it."""
    kwargs = variant()
    kwargs["training"].update(training)
    with pytest.raises(ConfigError, match=message):
        make_job(kwargs)


def test_label_weights_all_zero_for_the_task(records, tmp_path):
    """What the schema cannot tell: the tumour model's classes (background, tumour) all 0."""
    kwargs = variant(label_probabilities={"background": 0, "liver": 1, "tumor": 0})
    kwargs["model"] = {"network": "dynunet", "task": "tumor", "patch_size": [32, 32, 16]}
    with pytest.raises(ConfigError, match=r"training\.label_probabilities: all weights of the tumor task's"):
        train_model(records["train"], records["validation"], make_job(kwargs), tmp_path)


@pytest.mark.slow
def test_ahnet_tumor_model_with_pretrained_encoder(records, tmp_path):
    """The demo's small AHNet on a binary task, started from a 2D encoder pretrained on
    2.5D slices: 12-slice volumes padded to a 32-slice patch, two output channels, the
    encoder's kernels in the model (a learning rate too small to move them)."""
    encoder = tmp_path / "encoder.pt"
    pretrain_encoder(
        records["train"],
        encoder,
        layers=[1, 1, 1, 1],
        epochs=1,
        slices_per_epoch=2,
        batch_size=2,
        lr=1e-3,
        seed=0,
        crop=32,
    )
    kwargs = variant(
        max_epochs=1,
        iterations_per_epoch=1,
        batch_size=1,
        learning_rate=1e-30,
        keep_checkpoint=False,
    )
    kwargs["model"] = {"network": "ahnet", "task": "tumor", "patch_size": [64, 64, 32]}
    kwargs["ahnet"]["encoder"] = "slices"
    train_model(records["train"], records["validation"], make_job(kwargs, encoder_path=encoder), tmp_path / "model")
    net, spec = load_model(tmp_path / "model" / "model.pt")
    assert spec["out_channels"] == 2 and spec["class_names"] == ["background", "tumor"]
    kernel = load_encoder(encoder).state_dict()["layer1.0.conv1.weight"]
    assert torch.equal(net.state_dict()["layer1.0.conv1.weight"], kernel[..., None])
    history = pd.read_csv(tmp_path / "model" / "history.tsv", sep="\t")
    assert "val_dice_tumor" in history.columns and "val_dice_liver" not in history.columns


def test_the_job_takes_the_schemas_defaults_and_checks_the_encoder():
    kwargs = variant()
    del kwargs["loss"]["alpha"]
    assert make_job(kwargs).loss == {"margin": 10, "alpha": 0.1, "dice_weight": 0}
    kwargs = variant()
    kwargs["model"] = {"network": "ahnet", "task": "liver", "patch_size": [64, 64, 32]}
    kwargs["ahnet"]["encoder"] = "slices"
    with pytest.raises(ConfigError, match="ahnet.encoder 'slices': no encoder file given"):
        make_job(kwargs)


def test_batchnorm_recalibration_takes_plain_mean_of_whole_volume_statistics():
    """Precise BN on whole volumes: every sliding window of a normalised training volume
    in one batch, so the running statistics become the mean over volumes of each whole
    volume's statistics; the weights are untouched, the momentum restored, and the
    network left in train mode."""
    from liverseg.augment import normalise
    from liverseg.train import recalibrate_batchnorm

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 3, 1), torch.nn.BatchNorm3d(3))
    net[1].running_mean.fill_(100.0)  # stale statistics of "earlier weights"
    weights = copy.deepcopy(net.state_dict())
    rng = np.random.default_rng(0)
    # 8x8x4 volumes, 4x4x4 windows without overlap: four windows tile each volume
    images = [(rng.normal(size=(8, 8, 4)) * (n + 1) + 50 * n).astype(np.float32) for n in range(3)]
    window = {"overlap": 0.0, "mode": "constant", "precision": "float32"}  # exact statistics on any CPU
    recalibrate_batchnorm(net, iter(images), (4, 4, 4), window, torch.device("cpu"))

    with torch.no_grad():
        features = [net[0](torch.from_numpy(normalise(image))[None, None]) for image in images]
    means = torch.stack([f.mean(dim=(0, 2, 3, 4)) for f in features]).mean(0)
    variances = torch.stack([f.transpose(0, 1).flatten(1).var(dim=1) for f in features]).mean(0)
    assert torch.allclose(net[1].running_mean, means, atol=1e-5)
    assert torch.allclose(net[1].running_var, variances, rtol=1e-4)
    assert net[1].momentum == 0.1 and net.training
    for key in ("0.weight", "0.bias", "1.weight", "1.bias"):
        assert torch.equal(net.state_dict()[key], weights[key])


def test_weight_average_is_a_warmed_up_ema_of_the_parameters_with_the_networks_buffers():
    """After n updates the decay is min(decay, (1 + n) / (10 + n)); the average's
    parameters follow the closed form, its BatchNorm buffers are the trained network's,
    and its state round-trips."""
    from liverseg.weight_average import WeightAverage

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 1), torch.nn.BatchNorm3d(2))
    average = WeightAverage(net, decay=0.5)
    expected = net[0].weight.detach().clone()
    for n in range(4):
        with torch.no_grad():
            net[0].weight.add_(1.0)
            net[1].running_mean.add_(3.0)
        decay = min(0.5, (1 + n) / (10 + n))
        assert average.current_decay() == pytest.approx(decay)
        average.update(net)
        expected = decay * expected + (1 - decay) * net[0].weight.detach()
    assert [min(0.5, (1 + n) / (10 + n)) for n in range(4)] == pytest.approx([0.1, 2 / 11, 0.25, 4 / 13])
    assert torch.allclose(average.averaged[0].weight, expected)
    assert not torch.allclose(average.averaged[0].weight, net[0].weight)
    assert torch.equal(average.averaged[1].running_mean, net[1].running_mean)
    assert not any(p.requires_grad for p in average.averaged.parameters())
    restored = WeightAverage(net, decay=0.5)
    restored.load_state_dict(average.state_dict())
    assert restored.updates == 4
    assert_same_tensors(restored.averaged.state_dict(), average.averaged.state_dict())
    with pytest.raises(ValueError, match="decay 1.0 must lie strictly between 0 and 1"):
        WeightAverage(net, decay=1.0)


def test_weight_average_is_validated_kept_and_resumed(reference, records, tmp_path):
    """With ema_decay, model.pt keeps the average (not the trained weights), and a run
    resumed after its first epoch ends with the uninterrupted run's average and model."""

    def averaged(**changes) -> TrainingJob:
        kwargs = variant(**changes)
        kwargs["training"]["ema_decay"] = 0.9
        return make_job(kwargs)

    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    train_model(records["train"], records["validation"], averaged(), whole)
    train_model(records["train"], records["validation"], averaged(max_epochs=1), resumed)
    train_model(records["train"], records["validation"], averaged(), resumed)
    final = ckpt(whole)
    assert final["average"]["updates"] == 9  # 3 epochs of 3 steps
    # the trained weights are the reference run's (averaging changes no step) ...
    assert_same_tensors(final["model"], ckpt(reference)["model"])
    # ... and what is kept is the average of the best epoch
    kept = load_model(whole / "model.pt")[0].state_dict()
    best = final["best_state"]
    assert_same_tensors(kept, best)
    if final["best_epoch"] == 3:
        assert_same_tensors(best, final["average"]["weights"])
    assert not all(torch.equal(kept[k], final["model"][k]) for k in kept)
    assert_same_tensors(ckpt(resumed)["average"]["weights"], final["average"]["weights"])
    assert_same_tensors(load_model(resumed / "model.pt")[0].state_dict(), kept)
