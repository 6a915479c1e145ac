"""Time whole-volume sliding-window inference and its peak memory: liverseg against MONAI.

    python benchmarks/bench_inference.py [--slices 136] [--paper] [--device cuda] [--quick] [--repeat N]
                                         [--sw-batch-size N] [--overlap X] [--only liverseg]
                                         [--out results/benchmarks/inference.tsv]

The volume: 512 x 512 x 100 voxels (`--slices 136`: the largest ATLAS volume; `--quick`:
192 x 192 x 40). The network: the multi-class AHNet of config/demo.yaml (layers 1,1,1,1,
one PSP block, 64 x 32 x 32 patches) with that config's inference settings (overlap,
Gaussian blending, sw_batch_size); `--paper`: config/config.yaml's (ResNet-50 encoder,
four PSP blocks, 256 x 256 x 64 patches), for a GPU. Weights are random (seeded): the
cost does not depend on them.

- liverseg: `liverseg.infer.predict_volume` (normalisation, Gaussian sliding windows,
  softmax), what the workflow's predict and ensemble jobs run.
  Its AHNet has liverseg's window layers (liverseg/layers.py: the same function, faster
  pooling and transposed convolutions on the CPU).
- MONAI: `monai.inferers.sliding_window_inference` called directly with MONAI's AHNet as
  it is (the same weights), the same patch size, overlap, mode and sw_batch_size, on the
  z-normalised volume, then a softmax (under autocast on a GPU, as liverseg does).

Both sides compute in float16 on a GPU and in float32 on the CPU, whatever
`inference.precision` makes of the CPU: MONAI's call has no bfloat16 of its own, and what
is compared is the inference's implementation, not its precision.

Each runs in a fresh process (multiprocessing "spawn"; with `--repeat`, alternating), so
its peak resident set size (VmHWM: interpreter, torch, MONAI, TorchIO, network, the volume
and everything the inference allocates) is its own; on a GPU, torch.cuda.max_memory_allocated
too. Wall and CPU seconds are both kept: on a shared machine the CPU time moves less. The
outputs must agree: probabilities within 1e-2 and labels (argmax) differing in at most
1e-4 of the voxels (see PROBABILITY_TOLERANCE; exit 1 otherwise). Writes a TSV: seconds,
CPU seconds, voxels/s, peak RSS, the peak before the call (baseline), GPU peak, the ratios
to liverseg, the largest probability difference and the share of differing labels.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import OUT_DIR, exit_status, load_config, peak_rss_mib, summary_row
from monai.inferers import sliding_window_inference

from liverseg.config import out_channels
from liverseg.infer import predict_volume
from liverseg.io import write_tsv
from liverseg.layers import use_window_layers
from liverseg.nets import ahnet
from liverseg.train import recalibrate_batchnorm

IN_PLANE = 512
QUICK_SHAPE = (192, 192, 40)
# Random weights give logits in the thousands, where rounding at 1e-6 of the logits (the
# window layers' summation order on the CPU; float16 autocast on a GPU) moves a softmax by up
# to ~1e-2 where two classes are within a few hundredths: the outputs agree when the
# probabilities are within 1e-2 and the labels (argmax) differ in at most 1e-4 of the voxels.
PROBABILITY_TOLERANCE, LABEL_TOLERANCE = 1e-2, 1e-4


def settings(config_name: str, model: str = "ahnet_multiclass") -> dict:
    """Network, patch and sliding-window settings of a model in a config file."""
    config = load_config(config_name)
    return dict(
        ahnet=config["ahnet"],
        patch_size=config["models"][model]["patch_size"],
        task=config["models"][model]["task"],
        **config["inference"],
    )


def test_volume(shape) -> np.ndarray:
    """A float32 MRI-like intensity volume; its content does not change the cost."""
    rng = np.random.default_rng(0)
    volume = rng.standard_normal(shape, dtype=np.float32)
    volume *= 20
    volume += np.linspace(80, 120, shape[-1], dtype=np.float32)
    return volume


def network(cfg: dict, name: str) -> torch.nn.Module:
    """MONAI's AHNet as it is, or with liverseg's window layers (what `nets.build_network`
    makes); the same weights, and one network in memory either way.

    Untrained BatchNorm statistics (mean 0, variance 1) let the activations grow to
    thousands through the encoder, where float rounding would decide the softmax; they are
    set as training's recalibration sets them, here from one window-sized noise volume
    (on MONAI's layers, so both sides get the same statistics)."""
    torch.manual_seed(0)
    net = ahnet(
        out_channels(cfg["task"]),
        cfg["ahnet"]["layers"],
        cfg["ahnet"]["psp_block_num"],
        window_layers=False,
    )
    noise = np.random.default_rng(0).standard_normal(cfg["patch_size"], dtype=np.float32)
    window = {"overlap": 0.0, "mode": "constant", "precision": "float32"}
    recalibrate_batchnorm(net, [noise], cfg["patch_size"], window, torch.device("cpu"))
    return (use_window_layers(net) if name == "liverseg" else net).eval()


def liverseg_infer(net, image, cfg, device):
    return predict_volume(
        net,
        image,
        cfg["patch_size"],
        overlap=cfg["overlap"],
        mode=cfg["mode"],
        sw_batch_size=cfg["sw_batch_size"],
        device=device,
        precision="auto" if device.type == "cuda" else "float32",  # as monai_infer's autocast
    )


def monai_infer(net, image, cfg, device):
    net.to(device).eval()
    x = torch.from_numpy(image)[None, None].to(device)
    x = (x - x.mean()) / x.std()
    with (
        torch.no_grad(),
        torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"),
    ):
        logits = sliding_window_inference(
            x,
            cfg["patch_size"],
            cfg["sw_batch_size"],
            net,
            overlap=cfg["overlap"],
            mode=cfg["mode"],
        )
    return torch.softmax(logits.float(), dim=1)[0].cpu().numpy()


CONTENDERS = {"liverseg": liverseg_infer, "monai": monai_infer}


def measure(name: str, shape, cfg: dict, device: str, out_path: str) -> dict:
    """Run in a fresh process: one inference, its time and memory; probabilities saved.
    Both sides import the same modules (at the top of this file) before the baseline."""
    device = torch.device(device)
    image, net = test_volume(shape), network(cfg, name)
    baseline = peak_rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    probabilities = CONTENDERS[name](net, image, cfg, device)  # back on the host: the GPU is done
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    peak = peak_rss_mib()
    gpu_peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
    np.save(out_path, probabilities)
    return dict(
        implementation=name,
        seconds=seconds,
        cpu_seconds=cpu,
        voxels_per_s=image.size / seconds,
        peak_rss_mib=peak,
        baseline_rss_mib=baseline,
        gpu_peak_mib=gpu_peak,
    )


def differences(a_path, b_path) -> tuple[float, float]:
    """The largest difference of two probability volumes and the share of voxels whose
    label (argmax) differs."""
    a, b = np.load(a_path, mmap_mode="r"), np.load(b_path, mmap_mode="r")
    largest = max(float(np.abs(a[c] - b[c]).max()) for c in range(a.shape[0]))  # a channel at a time
    return largest, float(np.mean(a.argmax(axis=0) != b.argmax(axis=0)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=100, help="slices of the 512 x 512 volume (ATLAS: 44-136)")
    parser.add_argument("--paper", action="store_true", help="config/config.yaml's network and patches (GPU scale)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--quick", action="store_true", help=f"a {'x'.join(map(str, QUICK_SHAPE))} volume")
    parser.add_argument("--sw-batch-size", type=int, help="windows per forward pass (default: the config's)")
    parser.add_argument(
        "--overlap",
        type=float,
        help="window overlap (default: the config's); the peak memory does not depend on it",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each side, alternating (medians reported)")
    parser.add_argument("--only", choices=list(CONTENDERS), help="run one side only (no comparison)")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "inference.tsv")
    return parser


def run(args: argparse.Namespace) -> list[dict]:
    import pandas as pd

    cfg = settings("paper" if args.paper else "demo")
    cfg["sw_batch_size"] = args.sw_batch_size or cfg["sw_batch_size"]
    cfg["overlap"] = cfg["overlap"] if args.overlap is None else args.overlap
    shape = QUICK_SHAPE if args.quick else (IN_PLANE, IN_PLANE, args.slices)
    names = [args.only] if args.only else list(CONTENDERS)
    print(
        f"volume {shape}, {args.device}, AHNet layers {cfg['ahnet']['layers']} psp {cfg['ahnet']['psp_block_num']}, "
        f"patch {cfg['patch_size']}, overlap {cfg['overlap']}, {cfg['mode']}, sw_batch_size {cfg['sw_batch_size']}",
        flush=True,
    )
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bench_inference.") as tmp:
        paths = {name: str(Path(tmp) / f"{name}.npy") for name in names}
        runs = []
        for _ in range(args.repeat):  # alternating, so that a change of the machine's load hits both sides
            for name in names:
                with context.Pool(1) as pool:  # a fresh process each: its own high-water mark
                    runs.append(pool.apply(measure, (name, shape, cfg, args.device, paths[name])))
                print(
                    "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in runs[-1].items()),
                    flush=True,
                )
        difference, label_share = differences(*paths.values()) if len(names) == 2 else (float("nan"),) * 2
    table = pd.DataFrame(runs).groupby("implementation", sort=False).median().reset_index()
    table["time_ratio_to_liverseg"] = table.seconds / table.seconds[0]
    table["memory_ratio_to_liverseg"] = table.peak_rss_mib / table.peak_rss_mib[0]
    agrees = None if len(names) == 1 else bool(difference <= PROBABILITY_TOLERANCE and label_share <= LABEL_TOLERANCE)
    table["max_abs_difference"] = difference
    table["labels_differing"] = label_share
    print(table.to_string(index=False))
    write_tsv(args.out, table)
    print(f"wrote {args.out}")
    if len(names) == 1:
        return []
    ours, peer = table.iloc[0], table.iloc[1]
    what = (
        f"{'x'.join(map(str, shape))} volume, AHNet {'paper' if args.paper else 'demo'}, "
        f"overlap {cfg['overlap']}, sw_batch_size {cfg['sw_batch_size']}, {args.device}"
    )
    rows = [
        summary_row(
            "inference speed",
            what,
            ours.voxels_per_s,
            peer.voxels_per_s,
            "MONAI",
            ours.voxels_per_s / peer.voxels_per_s,
            "voxels/s",
            agrees,
        ),
        summary_row(
            "inference peak RSS",
            what,
            ours.peak_rss_mib,
            peer.peak_rss_mib,
            "MONAI",
            peer.peak_rss_mib / ours.peak_rss_mib,
            "MiB",
            agrees,
        ),
    ]
    if args.device.startswith("cuda"):
        rows.append(
            summary_row(
                "inference GPU peak",
                what,
                ours.gpu_peak_mib,
                peer.gpu_peak_mib,
                "MONAI",
                peer.gpu_peak_mib / ours.gpu_peak_mib,
                "MiB",
                agrees,
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    return exit_status(run(build_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
