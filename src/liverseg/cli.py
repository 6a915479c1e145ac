"""The `liverseg` command: the library's steps for use outside Snakemake.

Its defaults are the workflow's (workflow/schemas/config.schema.yaml), read from the schema."""

from __future__ import annotations

import argparse
import sys

from .config import schema_choices, schema_default
from .errors import InputError


def _synth(args) -> None:
    from .synthetic import write_synthetic_cohort

    write_synthetic_cohort(
        args.out_dir,
        subjects=args.subjects,
        heldout=args.heldout,
        seed=args.seed,
        scale=args.scale,
        overwrite=args.overwrite,
    )
    print(
        f"synthetic cohort written to {args.out_dir} (train/{', test/imagesTs/, test_labels/' if args.heldout else ''})"
    )


def _evaluate(args) -> None:
    from .evaluate import evaluate_folders

    table = evaluate_folders(args.pred, args.gt, args.out, tolerance_mm=args.tolerance_mm, jobs=args.jobs)
    print(f"{len(table)} subjects evaluated -> {args.out}")


def _predict(args) -> None:
    from .ensemble import predict_images

    postprocess = {"dilation_mm": args.dilation_mm, "closing_mm": args.closing_mm}
    inference = {
        "overlap": args.overlap,
        "mode": schema_default("inference.mode"),
        "sw_batch_size": args.sw_batch_size,
        "precision": args.precision,
    }
    table = predict_images(
        args.models,
        args.input,
        args.output,
        postprocess=postprocess,
        inference=inference,
        device=args.device,
    )
    print(f"segmentations and lesions.tsv ({len(table)} lesions) written to {args.output}")


def _costs(args) -> None:
    from .tables import to_markdown
    from .workflow.run_costs import write_rule_costs, write_training

    print(to_markdown(write_rule_costs(args.results_dir)), end="")
    print(f"-> {args.results_dir}/benchmarks/rule_costs.tsv, rule_costs.md")
    training = write_training(args.results_dir)
    if not training.empty:
        print("\n" + to_markdown(training), end="")
        print(f"-> {args.results_dir}/benchmarks/training.tsv, training.md")


def _configured(parser: argparse.ArgumentParser, flag: str, type_, key: str, help_: str) -> None:
    """An option whose default is the config key's, from the schema, shown by --help."""
    parser.add_argument(flag, type=type_, default=schema_default(key), help=f"{help_} (default %(default)s: {key})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="liverseg", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser("synth", help="write a synthetic ATLAS-like cohort in the official layout")
    synth.add_argument("out_dir")
    _configured(synth, "--subjects", int, "dataset.synthetic.subjects", "cross-validation subjects")
    _configured(synth, "--heldout", int, "dataset.synthetic.heldout", "held-out images outside the cross-validation")
    _configured(synth, "--seed", int, "dataset.synthetic.seed", "the phantoms' random seed")
    _configured(synth, "--scale", float, "dataset.synthetic.scale", "grid coarsening factor (1 = ATLAS-like voxels)")
    synth.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a cohort written to out_dir before (removing what the new one does not rewrite)",
    )
    synth.set_defaults(run=_synth)

    evaluate = commands.add_parser("evaluate", help="the challenge's metrics for a folder of predictions")
    evaluate.add_argument("--pred", required=True, help="folder of predictions imN.nii.gz")
    evaluate.add_argument("--gt", required=True, help="folder of ground truths lbN.nii.gz")
    evaluate.add_argument("--out", required=True, help="output TSV, one row per subject")
    _configured(evaluate, "--tolerance-mm", float, "evaluation.tolerance_mm", "surface Dice tolerance")
    evaluate.add_argument("--jobs", type=int, default=None, help="parallel processes (default: all cores)")
    evaluate.set_defaults(run=_evaluate)

    predict = commands.add_parser(
        "predict",
        help="segment your own images with an ensemble of trained models (post-processed, lesion report)",
    )
    predict.add_argument(
        "--models",
        nargs="+",
        required=True,
        help="model.pt files or folders holding them (e.g. results/models/ahnet_multiclass)",
    )
    predict.add_argument("--input", required=True, help="a NIfTI image or a folder of them")
    predict.add_argument("--output", required=True, help="output folder: one segmentation per image, lesions.tsv")
    _configured(predict, "--overlap", float, "inference.overlap", "sliding-window overlap")
    _configured(predict, "--sw-batch-size", int, "inference.sw_batch_size", "sliding windows per forward pass")
    predict.add_argument(
        "--precision",
        choices=schema_choices("inference.precision"),
        default=schema_default("inference.precision"),
        help="what the networks compute in: auto = float16 on CUDA, bfloat16 on a CPU with native bfloat16 "
        "(AVX-512 BF16, AMX), else float32 (default %(default)s: inference.precision)",
    )
    _configured(predict, "--dilation-mm", float, "postprocess.dilation_mm", "post-processing step 2 radius")
    _configured(predict, "--closing-mm", float, "postprocess.closing_mm", "post-processing step 3 radius")
    predict.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    predict.set_defaults(run=_predict)

    costs = commands.add_parser(
        "costs",
        help="time and memory per workflow rule, from the jobs' benchmark files (benchmarks/rule_costs.tsv, .md), "
        "and the training loops' wait for data, from the models' history.tsv (benchmarks/training.tsv, .md)",
    )
    costs.add_argument("results_dir", nargs="?", default="results", help="the workflow's results folder")
    costs.set_defaults(run=_costs)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; a user's error (bad input, a file system refusing a write, Ctrl-C)
    ends in one line on stderr, only an unexpected error in a traceback."""
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (
        InputError,
        OSError,
    ) as exc:  # OSError: e.g. a disk that filled up, a folder made read-only meanwhile
        print(f"liverseg: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "liverseg: interrupted; each file written so far is complete (files are written whole or not at all)",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
