"""Does the training data pipeline keep up with the model it feeds?

    python benchmarks/bench_data_pipeline.py [--scale 1] [--quick] [--out results/benchmarks/data_pipeline.tsv]
    python benchmarks/bench_data_pipeline.py --paper --device cuda     # a GPU machine: one paper-scale epoch

A few synthetic subjects (`liverseg.synthetic`, demo-like `--scale 4` by default, ATLAS-like
with `--scale 1`) go through the training pipeline of config/demo.yaml's ahnet_multiclass
(`--paper`: config/config.yaml's, scale 1): every augmentation of the paper
(`liverseg.augment.training_transform`), the label sampler with the config's class
weights, the TorchIO queue and loader, the batch size; each popped batch then trains the
model one step (AHNet forward, margin-based label-smoothing loss, backward, Adam; in the
config's `training.precision`: float16 with gradient scaling on a GPU, bfloat16 on a CPU
with native bfloat16) in `liverseg.train.run_steps`, the loop training
runs, which times the device's steps (CUDA events on a GPU, where the host makes the next
batch while a step runs) apart from the rest of the loop, the wait for batches (one
untimed step first).

With `--workers 0` (the default on the CPU) the main process makes every patch, so the
waiting time is the time one worker takes to make them: patches/s per worker, against
the step rate (patches/s the model consumes); their ratio > 1 means one worker is enough
to keep the model busy. With workers (`--paper`: the config's 6), patches are made while
the model trains, and what is left is the share of the epoch spent waiting; on a GPU,
also iterations/s and torch.cuda.max_memory_allocated.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import torch
import torchio as tio
from common import OUT_DIR, exit_status, load_config, summary_row

from liverseg.cohort import scan_dataset
from liverseg.config import out_channels, schema_default
from liverseg.io import write_tsv
from liverseg.nets import build_network
from liverseg.synthetic import write_synthetic_cohort
from liverseg.train import (
    StepTimes,
    TrainingConfig,
    optimisation,
    optimiser_step,
    patch_batches,
    run_steps,
    training_patches,
)

MODEL = "ahnet_multiclass"


def training_batches(records, config: dict, workers: int):
    """Endless batches built by liverseg.train's own functions."""
    model = config["models"][MODEL]
    training = TrainingConfig.from_mapping({**config["training"], "num_workers": workers})
    dataset, sampler = training_patches(records, model["task"], model["patch_size"], config["augmentation"], training)
    return patch_batches(dataset, sampler, training)


class Trainer:
    """The model, loss and optimiser of liverseg.train."""

    def __init__(self, config: dict, device: torch.device):
        model = config["models"][MODEL]
        self.device = device
        self.net = (
            build_network(
                "ahnet",
                out_channels(model["task"]),
                model["patch_size"],
                config["ahnet"],
                None,
                None,
            )
            .to(device)
            .train()
        )
        # demo.yaml, read as written, lacks the key: the workflow takes it from config.yaml
        self.precision = config["training"].get("precision", schema_default("training.precision"))
        self.criterion, self.optimizer, self.scaler = optimisation(
            self.net, config["training"]["learning_rate"], config["loss"], device, self.precision
        )

    def step(self, batch: dict) -> None:
        optimiser_step(self.net, batch, self.criterion, self.optimizer, self.scaler, self.device, self.precision)

    def timed_steps(self, batches, steps: int) -> StepTimes:
        """liverseg.train's own loop: the wait for each batch timed apart from its step."""
        return run_steps(
            self.net,
            batches,
            steps,
            self.criterion,
            self.optimizer,
            self.scaler,
            self.device,
            precision=self.precision,
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paper", action="store_true", help="config/config.yaml's model, patches and queue")
    parser.add_argument("--scale", type=float, help="synthetic grid coarsening (default: 4 demo, 1 paper)")
    parser.add_argument("--subjects", type=int, help="synthetic subjects (default: one queue fill's, at least 4)")
    parser.add_argument("--workers", type=int, help="queue workers (default: 0 on the CPU, the config's on a GPU)")
    parser.add_argument(
        "--steps",
        type=int,
        help="iterations (default: the config's iterations_per_epoch, in whole queue fills)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="two subjects, one queue fill")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "data_pipeline.tsv")
    return parser


def run(args: argparse.Namespace) -> list[dict]:
    import pandas as pd

    config = load_config("paper" if args.paper else "demo")
    device = torch.device(args.device)
    training = config["training"]
    scale = args.scale or (1.0 if args.paper else 4.0)
    workers = args.workers if args.workers is not None else (training["num_workers"] if device.type == "cuda" else 0)
    # Whole queue fills, so every patch made is a patch consumed.
    fill = max(training["queue_length"] // training["batch_size"], 1)  # batches
    steps = args.steps or fill * (1 if args.quick else math.ceil(training["iterations_per_epoch"] / fill))
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="bench_data.") as tmp:
        per_fill = training["queue_length"] // training["samples_per_volume"]  # subjects a queue fill loads
        subjects = 2 if args.quick else args.subjects or max(per_fill, 4)
        write_synthetic_cohort(tmp, subjects=subjects, heldout=0, seed=0, scale=scale)
        records = scan_dataset(Path(tmp) / "train").to_dict("records")
        shapes = sorted({r["shape"] for r in records})
        trainer = Trainer(config, device)
        patch = config["models"][MODEL]["patch_size"]
        batch = training["batch_size"]
        warm_up = {
            "image": {tio.DATA: torch.randn(batch, 1, *patch)},
            "label": {tio.DATA: torch.zeros(batch, 1, *patch)},
        }
        trainer.step(warm_up)  # untimed
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = trainer.timed_steps(training_batches(records, config, workers), steps)
    wait, work = times.data_seconds, times.step_seconds
    patches = steps * batch
    row = dict(
        config="paper" if args.paper else "demo",
        scale=scale,
        volumes=" ".join(shapes),
        patch="x".join(map(str, patch)),
        batch=batch,
        workers=workers,
        device=str(device),
        steps=steps,
        wait_s=wait,
        step_s=work,
        data_patches_per_s=patches / wait,
        step_patches_per_s=patches / work,
        data_to_step_ratio=work / wait,
        iterations_per_s=steps / (wait + work),
        wait_share=wait / (wait + work),
        gpu_peak_mib=torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else math.nan,
    )
    table = pd.DataFrame([row])
    print(table.T.to_string(header=False))
    write_tsv(args.out, table)
    print(f"wrote {args.out}")
    what = f"{row['config']} AHNet, {row['patch']} patches, batch {batch}, scale {scale:g}, {device}"
    if workers == 0:
        return [
            summary_row(
                "data pipeline",
                f"patches/s of one worker vs the model's step rate; {what}",
                row["data_patches_per_s"],
                row["step_patches_per_s"],
                "training step",
                row["data_to_step_ratio"],
                "patches/s",
            )
        ]
    return [
        summary_row(
            "training epoch",
            f"iterations/s with {workers} workers; {what}",
            row["iterations_per_s"],
            None,
            "",
            None,
            "it/s",
        ),
        summary_row(
            "data wait share",
            f"share of the epoch waiting for patches; {what}",
            row["wait_share"],
            None,
            "",
            None,
            "fraction",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    return exit_status(run(build_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
