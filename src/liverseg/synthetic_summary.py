"""What the synthetic cohort holds, measured on generated subjects (docs/synthetic.md).

Lesions are counted as the evaluation counts them: connected components of the label map's
tumour (label 2, the post-processing's connectivity), so touching tumours count once and
a tumour too small for the grid does not count at all. Contrast is measured on the tissue
map: viable tumour (not its capsule or necrosis) against liver parenchyma (not its
vessels); "separability" is the best Dice any single intensity threshold reaches for the
tumour inside the true liver, an oracle that knows the liver and the threshold's side.

Regenerate the figure and tables of docs/synthetic.md with
`python -m liverseg.synthetic_summary docs/synthetic.md docs/synthetic_examples.png`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .arrays import label_components
from .synthetic import LIVER, TUMOR, assign_phases, draw_subject

PHASES = ("arterial", "portal", "delayed", "no contrast agent", "unkown")
MARKERS = ("<!-- synthetic_summary: start -->", "<!-- synthetic_summary: end -->")


def best_threshold_dice(values: np.ndarray, is_tumor: np.ndarray) -> float:
    """The best Dice of "tumour = intensity above t" or "below t" over every t."""
    order = np.argsort(values, kind="stable")
    tumor = is_tumor[order].astype(np.float64)
    n_t = tumor.sum()
    if n_t == 0:
        return float("nan")
    best = 0.0
    for t in (tumor, tumor[::-1]):  # the k lowest, then the k highest, called tumour
        tp = np.cumsum(t)
        k = np.arange(1, len(t) + 1)
        best = max(best, float(np.max(2 * tp / (k + n_t))))
    return best


def subject_statistics(subject, name: str) -> tuple[dict, list[dict]]:
    """One subject's row (phase, lesions, volumes, contrast) and its lesions' rows."""
    voxel_mm3 = float(np.prod(subject.spacing))
    components, n = label_components(subject.label == 2)
    volumes = np.bincount(components.ravel(), minlength=n + 1)[1:] * voxel_mm3
    lesions = [{"subject": name, "volume_ml": v / 1e3, "diameter_mm": (6 * v / np.pi) ** (1 / 3)} for v in volumes]
    image = subject.image.astype(np.float64)
    liver, tumor = image[subject.tissue == LIVER], image[subject.tissue == TUMOR]
    organ = subject.label > 0
    row = {
        "subject": name,
        "phase": subject.phase,
        "lesions": n,
        "liver_ml": organ.sum() * voxel_mm3 / 1e3,
        "tumor_ml": volumes.sum() / 1e3,
        "burden": volumes.sum() / (organ.sum() * voxel_mm3),
        "ratio": tumor.mean() / liver.mean() if len(tumor) else np.nan,
        "cnr": (tumor.mean() - liver.mean()) / liver.std() if len(tumor) else np.nan,
        "threshold_dice": best_threshold_dice(image[organ], subject.label[organ] == 2),
    }
    return row, lesions


def cohort_statistics(subjects: int, seed: int, scale: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-subject and per-lesion statistics of the cohort write_synthetic_cohort writes (training
    subjects im0.., with its phases)."""
    phases = assign_phases(subjects, np.random.default_rng(np.random.SeedSequence([seed, 0x5EED])))
    rows, lesions = [], []
    for index, phase in enumerate(phases):
        row, found = subject_statistics(draw_subject(seed, index, phase, scale), f"im{index}")
        rows.append(row)
        lesions += found
    return pd.DataFrame(rows), pd.DataFrame(lesions, columns=["subject", "volume_ml", "diameter_mm"])


def contrast_by_phase(subjects: int, seed: int, scale: float) -> pd.DataFrame:
    """Each of `subjects` subjects generated in every phase (the anatomy stays, the
    contrast changes): one row per subject and phase."""
    rows = [
        subject_statistics(draw_subject(seed, index, phase, scale), f"im{index}")[0]
        for index in range(subjects)
        for phase in PHASES
    ]
    return pd.DataFrame(rows)


def _median_range(values: pd.Series, digits: int = 2) -> str:
    v = values.dropna()
    return f"{v.median():.{digits}f} ({v.min():.{digits}f} to {v.max():.{digits}f})"


def cohort_table(by_scale: dict[float, tuple[pd.DataFrame, pd.DataFrame]]) -> pd.DataFrame:
    """Lesions per subject, lesion sizes (percentiles), tumour burden, one column per scale."""
    columns = {}
    for scale, (subjects, lesions) in by_scale.items():
        counts = subjects["lesions"]

        def p(q, col="diameter_mm", lesions=lesions):
            return float(np.percentile(lesions[col], q))

        columns[f"scale {scale:g}"] = {
            "subjects": str(len(subjects)),
            "lesions per subject, mean (min to max)": f"{counts.mean():.2f} ({counts.min()} to {counts.max()})",
            "subjects with 1 / 2-3 / ≥4 lesions": f"{(counts == 1).sum()} / {counts.between(2, 3).sum()} / "
            f"{(counts >= 4).sum()}",
            "lesion diameter (mm), 5/25/50/75/95th percentile": " / ".join(f"{p(q):.0f}" for q in (5, 25, 50, 75, 95)),
            "lesion volume (ml), 5/50/95th percentile": " / ".join(f"{p(q, 'volume_ml'):.2g}" for q in (5, 50, 95)),
            "lesions < 10 mm / ≥ 50 mm": f"{(lesions.diameter_mm < 10).sum()} / {(lesions.diameter_mm >= 50).sum()}",
            "liver volume (ml), median (min to max)": _median_range(subjects["liver_ml"], 0),
            "tumour burden (% of liver), median (min to max)": _median_range(100 * subjects["burden"], 1),
        }
    return pd.DataFrame(columns).rename_axis("measure").reset_index()


def phase_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per phase: tumour/liver signal ratio, contrast-to-noise, best threshold Dice."""
    out = []
    for phase in PHASES:
        r = rows[rows["phase"] == phase]
        out.append(
            {
                "phase": phase,
                "subjects": len(r),
                "tumour / liver signal": _median_range(r["ratio"]),
                "CNR (tumour − liver) / σ_liver": _median_range(r["cnr"], 1),
                "best threshold Dice": _median_range(r["threshold_dice"]),
            }
        )
    return pd.DataFrame(out)


def example_cases(seed: int, scale: float) -> list[dict]:
    """One subject per phase (subjects 0-4, each in its own phase), the axial slice
    through its largest tumour, for synthetic_examples_figure."""
    cases = []
    for index, phase in enumerate(PHASES):
        subject = draw_subject(seed, index, phase, scale)
        components, _ = label_components(subject.label == 2)
        largest = np.argmax(np.bincount(components.ravel())[1:]) + 1
        z = int(round(np.nonzero(components == largest)[2].mean()))
        shown = "unknown (a mixture)" if phase == "unkown" else phase  # ATLAS misspells it
        cases.append(
            {
                "subject": f"im{index}",
                "phase": shown,
                "image": subject.image[:, :, z].astype(np.float32),
                "label": subject.label[:, :, z],
                "slice": z,
                "spacing": subject.spacing,
            }
        )
    return cases


def write_summary(
    doc_md,
    figure_png,
    *,
    subjects: int = 60,
    seed: int = 0,
    scales=(1.0, 2.0, 4.0),
    contrast_subjects: int = 12,
    contrast_scale: float = 2.0,
    figure_scale: float = 1.0,
) -> str:
    """Measure the cohort, draw the example slices, and write the tables into `doc_md`
    between MARKERS (the rest of the page is left as it is). Returns the tables' text."""
    from .figures import synthetic_examples_figure
    from .tables import to_markdown

    synthetic_examples_figure(example_cases(seed, figure_scale), figure_png)
    cohort = cohort_table({s: cohort_statistics(subjects, seed, s) for s in scales})
    contrast = phase_table(contrast_by_phase(contrast_subjects, seed, contrast_scale))
    text = "\n\n".join(
        [
            f"Measured by `liverseg.synthetic_summary` on the {subjects} training subjects of seed {seed} "
            "(write_synthetic_cohort's subjects and phases):",
            to_markdown(cohort),
            f"Contrast by phase: subjects im0-im{contrast_subjects - 1} of seed {seed}, each generated in every "
            f"phase (the anatomy stays, the contrast changes), scale {contrast_scale:g}; medians (min to max) over "
            "the subjects:",
            to_markdown(contrast),
        ]
    )
    path = Path(doc_md)
    page = path.read_text()
    start, end = (re.escape(m) for m in MARKERS)
    if not re.search(f"{start}.*{end}", page, re.S):
        raise ValueError(f"{path}: no {MARKERS[0]} ... {MARKERS[1]} section to fill")
    path.write_text(re.sub(f"{start}.*{end}", lambda _: f"{MARKERS[0]}\n{text}\n{MARKERS[1]}", page, flags=re.S))
    return text


if __name__ == "__main__":  # python -m liverseg.synthetic_summary DOC.md FIGURE.png
    print(write_summary(*sys.argv[1:3]))
