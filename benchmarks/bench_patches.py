"""Make training patches from ATLAS-size subjects: liverseg against TorchIO's own pipeline.

    python benchmarks/bench_patches.py [--subjects 4] [--quick] [--out results/benchmarks/patches.tsv]

A TorchIO queue makes patches in two places. Its workers load a subject and augment it
whole (the dataset's `__getitem__`: `liverseg.augment.training_transform`; liverseg's
`PatchSubjectsDataset` also computes the subject's distribution of patch centres
there); its main process then draws the subject's patches with the label sampler,
between two training steps, however many workers there are: on a GPU, what the sampler
costs per step is time the model waits. Both are timed, per subject, on ATLAS-size
subjects: the largest ATLAS grid (512 x 512 x 136, a scale-1 synthetic subject resampled
to it) and scale-1 synthetic subjects (320 x 250 x 86 and up), with config/config.yaml's
ahnet_multiclass: 256 x 256 x 64 patches, its augmentation probabilities, its 8 patches
per subject and class weights.

- liverseg: `liverseg.sampling.PatchSubjectsDataset` with `training_transform` (one copy
  of the subject, the separable bias field, `ZNormalise`) and
  `liverseg.sampling.LabelSampler` with TorchIO's centre rule (`shift=False`; training
  shifts patches at the borders, the same work);
- TorchIO: `tio.SubjectsDataset` with `training_transform(torchio_reference=True)`
  (TorchIO's RandomBiasField and ZNormalization, each transform copying the subject)
  and `tio.LabelSampler`.

Each subject goes through both under the same torch seeds (several seeds per subject,
so each augmentation's probability shows in the mean); the augmented images, label maps
and every patch must be equal (exit 1 otherwise). Writes a TSV: per side, subject and
seed, the worker's seconds (load, augment, and for liverseg the distribution) and the
main process's seconds (the draws and crops).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torchio as tio
from common import OUT_DIR, exit_status, load_config, summary_row
from scipy import ndimage

from liverseg.augment import torchio_subject, training_transform
from liverseg.cohort import scan_dataset
from liverseg.io import write_tsv
from liverseg.sampling import LabelSampler, PatchSubjectsDataset
from liverseg.synthetic import write_synthetic_cohort
from liverseg.train import TrainingConfig

MODEL = "ahnet_multiclass"
LARGEST = (512, 512, 136)


def largest_subject(record: dict, folder: Path) -> dict:
    """`record`'s subject resampled to the largest ATLAS grid (linear image, nearest labels)."""
    image, label = nib.load(record["image"]), nib.load(record["label"])
    zoom = np.array(LARGEST) / np.array(image.shape)
    affine = image.affine.copy()
    affine[:3, :3] /= zoom
    paths = folder / "im_largest.nii.gz", folder / "lb_largest.nii.gz"
    nib.save(
        nib.Nifti1Image(ndimage.zoom(image.get_fdata(dtype=np.float32), zoom, order=1), affine),
        paths[0],
    )
    nib.save(
        nib.Nifti1Image(ndimage.zoom(np.asarray(label.dataobj, np.uint8), zoom, order=0), affine),
        paths[1],
    )
    return dict(
        subject="largest",
        image=str(paths[0]),
        label=str(paths[1]),
        shape=",".join(map(str, LARGEST)),
    )


def one_side(dataset: tio.SubjectsDataset, sampler, seed: int, patches: int) -> tuple[float, float, list]:
    """Seconds a queue worker spends on the dataset's subject, seconds the main process
    spends drawing its patches, and the augmented subject with its patches."""
    torch.manual_seed(seed)
    start = time.perf_counter()
    augmented = dataset[0]
    augmented_at = time.perf_counter()
    drawn = list(sampler(augmented, patches))
    return augmented_at - start, time.perf_counter() - augmented_at, [augmented] + drawn


def equal(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x["image"].data, y["image"].data) and torch.equal(x["label"].data, y["label"].data)
        for x, y in zip(a, b)
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=3, help="scale-1 synthetic subjects besides the largest")
    parser.add_argument("--seeds", type=int, default=4, help="augmentation seeds per subject")
    parser.add_argument("--quick", action="store_true", help="one scale-1 subject, two seeds, no 512 x 512 x 136")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "patches.tsv")
    return parser


def run(args: argparse.Namespace) -> list[dict]:
    import pandas as pd

    config = load_config("paper")
    model = config["models"][MODEL]
    patch, training = model["patch_size"], TrainingConfig.from_mapping(config["training"])
    weights = training.sampler_probabilities(model["task"])
    sampler = LabelSampler(patch, "label", weights, shift=False)  # TorchIO's centre rule: the patches compare
    sides = {
        "liverseg": (
            lambda subject: PatchSubjectsDataset([subject], training_transform(config["augmentation"], patch), sampler),
            sampler,
        ),
        "TorchIO": (
            lambda subject: tio.SubjectsDataset(
                [subject],
                transform=training_transform(config["augmentation"], patch, torchio_reference=True),
            ),
            tio.LabelSampler(patch, label_name="label", label_probabilities=weights),
        ),
    }
    subjects, seeds = (1, 2) if args.quick else (args.subjects, args.seeds)
    rows, agree = [], True
    with tempfile.TemporaryDirectory(prefix="bench_patches.") as tmp:
        write_synthetic_cohort(tmp, subjects=subjects, heldout=0, seed=0, scale=1.0)
        records = scan_dataset(Path(tmp) / "train").to_dict("records")
        if not args.quick:
            records.append(largest_subject(records[0], Path(tmp)))
        for record in records:
            subject = torchio_subject(record, model["task"])
            for seed in range(seeds):
                outputs = {}
                for side, (dataset, side_sampler) in sides.items():
                    worker_s, main_s, outputs[side] = one_side(
                        dataset(subject), side_sampler, seed, training.samples_per_volume
                    )
                    rows.append(
                        dict(
                            side=side,
                            subject=record["subject"],
                            shape=record["shape"],
                            seed=seed,
                            worker_s=worker_s,
                            main_s=main_s,
                        )
                    )
                same = equal(outputs["liverseg"], outputs["TorchIO"])
                agree &= same
                print(
                    f"{record['subject']} seed {seed}: "
                    + "  ".join(
                        f"{r['side']} worker {r['worker_s']:.2f} s, main process {r['main_s']:.3f} s" for r in rows[-2:]
                    )
                    + f"  equal: {same}",
                    flush=True,
                )
    table = pd.DataFrame(rows)
    table["main_s_per_step"] = table.main_s * training.batch_size / training.samples_per_volume
    write_tsv(args.out, table)
    parts = ["worker_s", "main_s", "main_s_per_step"]
    mean = table.groupby("side")[parts].mean()
    largest = table[table.subject == "largest"].groupby("side")[parts].mean()
    print(mean.to_string())
    print(f"wrote {args.out}")
    what = f"{training.samples_per_volume} patches of {'x'.join(map(str, patch))} per subject"
    out = []
    for part, where in (
        ("worker_s", "subject in a queue worker"),
        ("main_s", "patch draws (main process)"),
    ):
        for suffix, means, which in (
            ("", mean, f"{len(records)} subjects x {seeds} seeds"),
            (", 512x512x136", largest, f"512x512x136, {seeds} seeds"),
        ):
            if len(means):
                out.append(
                    summary_row(
                        where + suffix,
                        f"{what}; {which}, mean",
                        means[part]["liverseg"],
                        means[part]["TorchIO"],
                        "TorchIO",
                        means[part]["TorchIO"] / means[part]["liverseg"],
                        "s",
                        agree,
                    )
                )
    return out


def main(argv: list[str] | None = None) -> int:
    return exit_status(run(build_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
