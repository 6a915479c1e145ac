"""Time the paper's three-step post-processing: liverseg against plain scipy.ndimage.

    python benchmarks/bench_postprocess.py [--repeat N] [--quick] [--out results/benchmarks/postprocess.tsv]

The volume: a raw multi-class prediction of 512 x 512 x 100 voxels at (0.8, 0.8, 3.0) mm
(`--quick`: every second voxel, 256 x 256 x 50 at twice the spacing), as a network
leaves it: a liver of about 200 x 150 x 60 voxels with a wobbling border, cavities in
it, stray liver islands beside it, lesions inside it (two cut by a one-voxel gap that
the closing bridges), lesions on its border, and lesions away from it, near and far.
Radii from config/config.yaml (the paper's: dilation 5 mm, closing 3 mm).

- liverseg: `liverseg.postprocess.postprocess_multiclass` (cc3d and distance transforms
  on bounding boxes).
- scipy: `postprocess_scipy.multiclass` (in this folder), the same steps composed of
  scipy.ndimage's label, binary_fill_holes, binary_dilation (one per lesion) and
  binary_closing; the reference the test suite checks liverseg against.

The outputs must be equal voxel for voxel (exit 1 otherwise). Writes a TSV: each
implementation's median and best seconds, and the ratio of scipy's median to liverseg's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from bench_metrics import ellipsoid
from common import OUT_DIR, exit_status, load_config, summary_row, timed
from postprocess_scipy import multiclass as scipy_multiclass

from liverseg.io import write_tsv
from liverseg.postprocess import postprocess_multiclass

SHAPE = (512, 512, 100)
SPACING = (0.8, 0.8, 3.0)


def raw_prediction(seed: int = 0) -> np.ndarray:
    """The full-size raw segmentation described in the module's docstring."""
    rng = np.random.default_rng(seed)
    seg = np.zeros(SHAPE, np.uint8)
    ellipsoid(seg, 1, (256, 240, 50), (100, 75, 30), rng, wobble=0.12)  # the liver
    for center, axes in (
        ((240, 230, 45), (6, 5, 2)),
        ((290, 260, 55), (4, 4, 1)),
        ((220, 280, 50), (3, 3, 1)),
    ):
        ellipsoid(seg, 0, center, axes)  # cavities: filled by step 1
    for center in ((420, 120, 40), (80, 380, 60), (400, 400, 20), (120, 100, 75)):
        ellipsoid(seg, 1, center, (6, 5, 2), rng, wobble=0.2)  # islands: erased by step 1
    inside = [
        ((220, 230, 38), (12, 12, 4)),
        ((300, 260, 45), (8, 8, 3)),
        ((260, 190, 30), (5, 5, 2)),
        ((200, 280, 60), (15, 12, 5)),
        ((310, 200, 65), (3, 3, 1)),
        ((250, 250, 55), (10, 9, 3)),
    ]
    for center, axes in inside:
        ellipsoid(seg, 2, center, axes, rng, wobble=0.3)
    seg[214:227, 230, 35:42][seg[214:227, 230, 35:42] == 2] = 1  # one-voxel cuts: bridged by step 3
    seg[200, 272:289, 57:63][seg[200, 272:289, 57:63] == 2] = 1
    border = [
        ((356, 240, 50), (6, 6, 2)),
        ((256, 165, 48), (5, 5, 2)),
    ]  # on the liver's border: kept
    away = [
        ((256, 150, 50), (3, 3, 1)),
        ((460, 300, 50), (8, 8, 3)),
        ((60, 60, 30), (5, 5, 2)),
    ]  # removed
    for center, axes in border + away:
        ellipsoid(seg, 2, center, axes, rng, wobble=0.2)
    return seg


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of liverseg (after one warm-up)")
    parser.add_argument("--peer-repeat", type=int, default=1, help="timed runs of scipy (slow; after one warm-up)")
    parser.add_argument("--quick", action="store_true", help="a 256 x 256 x 50 volume, one timed run each")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "postprocess.tsv")
    return parser


def run(args: argparse.Namespace) -> list[dict]:
    import pandas as pd

    seg, spacing = raw_prediction(), SPACING
    if args.quick:
        seg, spacing = seg[::2, ::2, ::2].copy(), tuple(2 * s for s in SPACING)
    radii = load_config("paper")["postprocess"]
    ours = lambda: postprocess_multiclass(seg, spacing, **radii)  # noqa: E731
    peer = lambda: scipy_multiclass(seg, spacing, radii["dilation_mm"], radii["closing_mm"])  # noqa: E731
    print(
        f"volume {seg.shape} at {spacing} mm, radii {radii}: liver {np.count_nonzero(seg == 1)} voxels, "
        f"tumour {np.count_nonzero(seg == 2)}",
        flush=True,
    )
    repeats = (1, 1) if args.quick else (args.repeat, args.peer_repeat)
    rows, outputs = [], {}
    for (name, fn), repeat in zip((("liverseg", ours), ("scipy.ndimage", peer)), repeats):
        outputs[name], median, best = timed(fn, repeat=repeat)
        rows.append(dict(implementation=name, seconds=median, best_seconds=best))
        print(f"{name:14s} median {median:8.3f} s  best {best:8.3f} s", flush=True)
    table = pd.DataFrame(rows)
    table["ratio_to_liverseg"] = table.seconds / table.seconds[0]
    equal = bool(np.array_equal(outputs["liverseg"], outputs["scipy.ndimage"]))
    table["equal_output"] = equal
    print(table.to_string(index=False))
    print(f"changed voxels: {np.count_nonzero(outputs['liverseg'] != seg)}; outputs equal: {equal}")
    write_tsv(args.out, table)
    print(f"wrote {args.out}")
    shape = "x".join(map(str, seg.shape))
    return [
        summary_row(
            "post-processing",
            f"three steps, one {shape} multi-class volume",
            table.seconds[0],
            table.seconds[1],
            "scipy.ndimage",
            table.ratio_to_liverseg[1],
            "s",
            equal,
        )
    ]


def main(argv: list[str] | None = None) -> int:
    return exit_status(run(build_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
