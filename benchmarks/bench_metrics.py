"""Time the challenge metrics of one liver-size pair: liverseg against its peers.

    python benchmarks/bench_metrics.py [--repeat N | --quick] [--out results/benchmarks/metrics.tsv]

The pair: 512 x 512 x 80 voxels at (0.8, 0.8, 3.0) mm, a liver-like ellipsoid of about
200 x 150 x 50 voxels with three tumours; the prediction is the ground truth with a
wobbling border, shifted tumours, one missed and one false-positive tumour. Each
implementation computes the whole metric set (Dice, surface Dice at 5 mm, HD, HD95,
ASSD for liver and tumour, and the burden) in its fastest use:

- liverseg: `liverseg.metrics.subject_metrics`.
- MONAI: `get_edge_surface_distance` once per region (both directions), HD, HD95 and
  ASSD derived from its distances with the challenge's definitions, `compute_dice`, and
  `compute_surface_dice(use_subvoxels=True)` for the surface Dice.
- medpy + surface-distance: medpy's surface distances once per direction and region
  (its hd, hd95 and assd would each redo both), `dc`, and surface-distance's
  `compute_surface_distances` + `compute_surface_dice_at_tolerance`.

Every implementation's values are checked against liverseg's (relative 1e-4); the script
exits 1 if they disagree. Writes a TSV: implementation, median and best seconds over the
repeats, and the ratio of each median to liverseg's.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
from common import OUT_DIR, exit_status, summary_row, timed

from liverseg.io import write_tsv
from liverseg.metrics import METRIC_KEYS, subject_metrics, tumor_burden

SHAPE = (512, 512, 80)
SPACING = (0.8, 0.8, 3.0)
TOLERANCE_MM = 5.0
RTOL = 1e-4


def ellipsoid(volume: np.ndarray, value: int, center, axes, rng=None, wobble: float = 0.0) -> None:
    """Paint an ellipsoid (evaluated on its own box only); `wobble` bends its border smoothly."""
    box = tuple(
        slice(max(0, int(c - 1.3 * a)), min(n, int(c + 1.3 * a) + 2)) for c, a, n in zip(center, axes, volume.shape)
    )
    grid = np.ogrid[box]
    r = sum(((g - c) / a) ** 2 for g, c, a in zip(grid, center, axes))
    for _ in range(3 if wobble else 0):
        freq = rng.uniform(1.0, 3.0, 3) * np.pi / np.asarray(axes)
        phase = rng.uniform(0, 2 * np.pi, 3)
        sx, sy, sz = (np.sin(f * g + p) for f, g, p in zip(freq, grid, phase))
        r = r - wobble * sx * sy * sz
    volume[box][r <= 1.0] = value


def liver_pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt = np.zeros(SHAPE, np.uint8)
    pred = np.zeros(SHAPE, np.uint8)
    ellipsoid(gt, 1, (256, 240, 40), (100, 75, 25))
    ellipsoid(pred, 1, (258, 238, 40), (98, 77, 25), rng, wobble=0.12)
    tumors = [
        ((220, 230, 38), (12, 12, 4)),
        ((300, 260, 45), (8, 8, 3)),
        ((260, 190, 30), (5, 5, 2)),
    ]
    for center, axes in tumors:
        ellipsoid(gt, 2, center, axes)
    for center, axes in tumors[:2]:  # the smallest one is missed
        ellipsoid(pred, 2, tuple(c + 1 for c in center), axes, rng, wobble=0.3)
    ellipsoid(pred, 2, (200, 300, 42), (4, 4, 2))  # a false positive
    return gt, pred


def ours(gt: np.ndarray, pred: np.ndarray) -> dict:
    return subject_metrics(gt, pred, SPACING, TOLERANCE_MM)


def monai_metrics(gt: np.ndarray, pred: np.ndarray) -> dict:
    import torch
    from monai.metrics import compute_dice, compute_surface_dice
    from monai.metrics.utils import get_edge_surface_distance

    warnings.filterwarnings("ignore", category=FutureWarning, module="monai")  # its own deprecated internals
    out = {}
    for region, g, p in (("liver", gt > 0, pred > 0), ("tumor", gt == 2, pred == 2)):
        tg, tp = torch.from_numpy(g), torch.from_numpy(p)
        _, (d_pred, d_gt), _ = get_edge_surface_distance(tp, tg, spacing=SPACING, symmetric=True)
        pooled = torch.cat([d_pred, d_gt]).double().numpy()
        one_hot_p = torch.stack([~tp, tp])[None].float()
        one_hot_g = torch.stack([~tg, tg])[None].float()
        out[f"{region}_dice"] = compute_dice(one_hot_p, one_hot_g, include_background=False).item()
        out[f"{region}_surface_dice"] = compute_surface_dice(
            one_hot_p, one_hot_g, [TOLERANCE_MM], spacing=SPACING, use_subvoxels=True
        ).item()
        out[f"{region}_hd"] = float(pooled.max())
        out[f"{region}_hd95"] = float(np.percentile(pooled, 95))
        out[f"{region}_assd"] = (d_pred.double().mean().item() + d_gt.double().mean().item()) / 2
    return _with_burden(out, gt, pred)


def medpy_surface_distance(gt: np.ndarray, pred: np.ndarray) -> dict:
    import medpy.metric.binary as medpy_binary
    import surface_distance

    directed = getattr(medpy_binary, "__surface_distances")  # what hd, hd95 and asd each call twice
    out = {}
    for region, g, p in (("liver", gt > 0, pred > 0), ("tumor", gt == 2, pred == 2)):
        d_pred, d_gt = directed(p, g, SPACING), directed(g, p, SPACING)
        pooled = np.concatenate([d_pred, d_gt])
        distances = surface_distance.compute_surface_distances(g, p, SPACING)
        out[f"{region}_dice"] = medpy_binary.dc(p, g)
        out[f"{region}_surface_dice"] = surface_distance.compute_surface_dice_at_tolerance(distances, TOLERANCE_MM)
        out[f"{region}_hd"] = float(pooled.max())
        out[f"{region}_hd95"] = float(np.percentile(pooled, 95))
        out[f"{region}_assd"] = (d_pred.mean() + d_gt.mean()) / 2
    return _with_burden(out, gt, pred)


def _with_burden(out: dict, gt: np.ndarray, pred: np.ndarray) -> dict:
    out["tumor_burden_true"], out["tumor_burden_pred"] = tumor_burden(gt), tumor_burden(pred)
    out["tumor_burden_error"] = abs(out["tumor_burden_true"] - out["tumor_burden_pred"])
    return {k: float(out[k]) for k in METRIC_KEYS}


IMPLEMENTATIONS = {
    "liverseg": ours,
    "monai": monai_metrics,
    "medpy+surface-distance": medpy_surface_distance,
}


def max_relative_difference(a: dict, b: dict) -> float:
    return max(abs(a[k] - b[k]) / max(abs(b[k]), 1e-12) for k in METRIC_KEYS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per implementation (after one warm-up)")
    parser.add_argument("--quick", action="store_true", help="one timed run per implementation")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "metrics.tsv")
    return parser


def run(args: argparse.Namespace) -> list[dict]:
    """Time every implementation, write the TSV; the summary row: liverseg against the
    fastest peer."""
    import pandas as pd

    gt, pred = liver_pair()
    print(f"pair {SHAPE} at {SPACING} mm: liver {np.count_nonzero(gt)} voxels, tumour {np.count_nonzero(gt == 2)}")
    repeat = 1 if args.quick else args.repeat
    values, times = {}, {}
    for name, fn in IMPLEMENTATIONS.items():
        values[name], median, best = timed(fn, gt, pred, repeat=repeat)
        times[name] = (median, best)
        print(f"{name:24s} median {median:8.3f} s  best {best:8.3f} s", flush=True)

    rows = []
    for name, (median, best) in times.items():
        diff = max_relative_difference(values[name], values["liverseg"])
        rows.append(
            dict(
                implementation=name,
                seconds=median,
                best_seconds=best,
                ratio_to_liverseg=median / times["liverseg"][0],
                max_relative_difference=diff,
                agrees=diff <= RTOL,
            )
        )
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    print("values (liverseg):", {k: round(v, 5) for k, v in values["liverseg"].items()})
    write_tsv(args.out, table)
    print(f"wrote {args.out}")
    fastest = table[table.implementation != "liverseg"].sort_values("seconds").iloc[0]
    return [
        summary_row(
            "metrics",
            f"nine challenge metrics, one {SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]} pair",
            times["liverseg"][0],
            fastest.seconds,
            fastest.implementation,
            fastest.ratio_to_liverseg,
            "s",
            bool(table.agrees.all()),
        )
    ]


def main(argv: list[str] | None = None) -> int:
    return exit_status(run(build_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
