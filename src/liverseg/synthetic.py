"""A synthetic ATLAS-like cohort: contrast-enhanced abdominal MRI phantoms with labels.

The generator writes the official ATLAS 2023 layout (`train/imagesTr/imN.nii.gz`,
`train/labelsTr/lbN.nii.gz`, `train/patient_info_train.json`) so the reader of the real
data serves the phantoms too, plus a held-out set outside the cross-validation
(`test/imagesTs/`, its labels kept apart in `test_labels/`), the stand-in for the
challenge's hidden test set.

Design choices, and why:
- Anatomy lives in physical millimetres and is drawn from its own random stream, so a
  subject's anatomy is the same whatever the voxel grid (`scale`) and whatever the
  cohort size: every subject seeds from (seed, index) alone.
- Smooth random fields (organ deformation, texture, bias field) are Gaussian-kernel
  interpolations of white noise on a fixed physical lattice; the kernel is separable,
  so a field on a voxel grid is three small matrix products (fast, no 3D resampling).
- The liver is a smooth union of a right lobe and a tapering left lobe, deformed by a
  low-frequency field, scaled to a drawn volume (1.2-2.2 L); tumours (HCC-like:
  arterial hyper-enhancement, portal/delayed wash-out, capsule and necrosis in large
  ones) are placed inside it at a depth matched to their size.
- Labels come from the same tissue map that makes the image, so they agree exactly:
  label 1 = parenchyma and intra-hepatic vessels, label 2 = tumour (with its capsule
  and necrosis).

Grid at scale 1: in-plane spacing U(0.68, 1.41) mm and slice thickness U(2, 4.6) mm
(ATLAS's ranges); a field of view fitted to an abdomen (380-460 mm left-right, 75-100 %
of that front-back), so the matrix is at most 512 (fine spacing) and ~270-330 (coarse);
slices = abdominal coverage (200-300 mm) / thickness, clipped to ATLAS's 44-136.
`scale` multiplies every spacing (anisotropy and its spread kept) and divides the
matrix and slice count, same field of view, but never below MIN_SLICES slices (the z
window then widens symmetrically; the anatomy is unchanged). Scale 4 (the CPU demo):
in-plane 61-128 voxels of 2.7-5.6 mm, 16-34 slices of 8-18.4 mm.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import edt
import numpy as np

from .arrays import bounding_box
from .errors import InputError
from .io import save_nifti, write_json
from .paths import check_fresh_folder, remove_all_but

# ATLAS 2023 phase strings ("unkown" is misspelled in the data) and their counts over 60.
ATLAS_PHASE_COUNTS: dict[str, int] = {
    "arterial": 33,
    "portal": 10,
    "delayed": 8,
    "unkown": 7,
    "no contrast agent": 2,
}
MATRIX = 512  # largest in-plane matrix at scale 1
FOV_MM = (380.0, 460.0)  # left-right field of view; anterior-posterior is 75-100 % of it
MIN_FOV_AP_MM = 290.0  # the body (at most 250 mm front to back) always fits
MIN_SLICES = 16  # at any scale (documented floor; widens the z window only)
INPLANE_MM = (0.68, 1.41)
THICKNESS_MM = (2.0, 4.6)
SLICES = (44, 136)
COVERAGE_MM = (200.0, 300.0)
LIVER_LITRES = (1.2, 2.2)
# Tumours per subject: 1 + Poisson(EXTRA_TUMORS_MEAN), at most 8; diameters (mm) of the
# dominant one and of its satellites, log-uniform (docs/synthetic.md shows the cohort).
EXTRA_TUMORS_MEAN = 1.0
DOMINANT_MM = (10.0, 120.0)
SATELLITE_MM = (5.0, 30.0)
MACHINES = (
    ("Siemens Avanto 1.5T", "VIBE"),
    ("Siemens Aera 1.5T", "VIBE"),
    ("Siemens Skyra 3T", "VIBE"),
    ("GE Signa HDxt 1.5T", "LAVA"),
)

# Tissue codes of the tissue map; the label map derives from them.
AIR, FAT, MUSCLE, SOFT, GAS, BONE, CSF, AORTA, VEIN, CORTEX, MEDULLA, SPLEEN, STOMACH = range(13)
LIVER, HEPATIC_VESSEL, TUMOR, CAPSULE, NECROSIS = range(13, 18)
LIVER_TISSUES = (LIVER, HEPATIC_VESSEL)
TUMOR_TISSUES = (TUMOR, CAPSULE, NECROSIS)

# Relative signal per tissue in the four contrast states (no agent, arterial, portal,
# delayed) of a fat-saturated T1 gradient echo. What matters: HCC enhances more than
# the liver in the arterial phase and washes out below it later; vessels follow the bolus.
_LEVELS = {
    AIR: (0.0, 0.0, 0.0, 0.0),
    FAT: (0.18, 0.18, 0.2, 0.2),
    MUSCLE: (0.35, 0.38, 0.45, 0.45),
    SOFT: (0.38, 0.45, 0.5, 0.48),
    GAS: (0.04, 0.04, 0.04, 0.04),
    BONE: (0.45, 0.45, 0.5, 0.5),
    CSF: (0.15, 0.15, 0.15, 0.15),
    AORTA: (0.3, 1.7, 1.0, 0.8),
    VEIN: (0.3, 0.45, 1.05, 0.85),
    CORTEX: (0.5, 1.3, 1.0, 0.9),
    MEDULLA: (0.4, 0.6, 1.0, 1.1),
    SPLEEN: (0.45, 0.85, 0.8, 0.72),
    STOMACH: (0.25, 0.3, 0.35, 0.35),
    LIVER: (0.55, 0.65, 0.85, 0.8),
    HEPATIC_VESSEL: (0.3, 0.55, 1.05, 0.85),
    TUMOR: (0.47, 0.95, 0.62, 0.58),
    CAPSULE: (0.4, 0.55, 0.8, 0.95),
    NECROSIS: (0.22, 0.25, 0.28, 0.3),
}
# Relative amplitude of the fine texture per tissue (bowel is busy, liver nearly flat).
_TEXTURE = {
    SOFT: 0.12,
    SPLEEN: 0.05,
    LIVER: 0.03,
    TUMOR: 0.1,
    CAPSULE: 0.05,
    NECROSIS: 0.1,
    MUSCLE: 0.04,
}
_PHASE_COLUMN = {"no contrast agent": 0, "arterial": 1, "portal": 2, "delayed": 3}


# --------------------------------------------------------------------------- cohort


def phase_counts(n: int) -> dict[str, int]:
    """ATLAS phase counts scaled to `n` subjects by the largest-remainder method."""
    total = sum(ATLAS_PHASE_COUNTS.values())
    quotas = {p: c * n / total for p, c in ATLAS_PHASE_COUNTS.items()}
    counts = {p: int(np.floor(q)) for p, q in quotas.items()}
    # Ties broken by the ATLAS order (dicts keep it; sort is stable).
    for p in sorted(quotas, key=lambda p: -(quotas[p] - counts[p]))[: n - sum(counts.values())]:
        counts[p] += 1
    return counts


def assign_phases(n: int, rng: np.random.Generator) -> list[str]:
    """Phase per subject index: the scaled ATLAS counts in a seeded shuffled order."""
    phases = [p for p, c in phase_counts(n).items() for _ in range(c)]
    return [phases[i] for i in rng.permutation(n)]


def write_synthetic_cohort(
    out_dir: str | os.PathLike,
    subjects: int = 60,
    heldout: int = 10,
    seed: int = 0,
    scale: float = 1.0,
    overwrite: bool = False,
) -> None:
    """Write a synthetic cohort in the ATLAS layout under `out_dir`.

    Training subjects im0..im{subjects-1} go to `train/` with `patient_info_train.json`
    and `dataset.json`; held-out subjects im{subjects}..im{subjects+heldout-1} go to
    `test/imagesTs/` (with `test/patient_info_test.json`) and their labels to
    `test_labels/`, outside every training folder. Same arguments, same bytes.

    `out_dir` must be absent or empty; with `overwrite`, it may hold an earlier cohort
    (nothing but train/, test/, test_labels/), and whatever of it the new cohort does not
    rewrite is removed at the end, so no stale subject outlives its patient_info entry.
    """
    _check_arguments(subjects, heldout, seed, scale)
    out = Path(out_dir)
    check_fresh_folder(out, overwrite, COHORT_LAYOUT)
    written: list[Path] = []
    cohort_rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    train_phases = assign_phases(subjects, cohort_rng)
    test_phases = assign_phases(heldout, cohort_rng) if heldout else []

    def write(index: int, phase: str, image_dir: Path, label_dir: Path) -> dict:
        subject = draw_subject(seed, index, phase, scale)
        written.extend((image_dir / f"im{index}.nii.gz", label_dir / f"lb{index}.nii.gz"))
        save_nifti(written[-2], subject.image, subject.affine)
        save_nifti(written[-1], subject.label, subject.affine)
        return subject.info

    train_info = {
        f"im{i}": write(i, phase, out / "train" / "imagesTr", out / "train" / "labelsTr")
        for i, phase in enumerate(train_phases)
    }
    write_json(out / "train" / "patient_info_train.json", train_info)
    write_json(
        out / "train" / "dataset.json",
        {
            "name": "ATLAS-like synthetic phantoms",
            "description": f"liverseg.synthetic seed={seed} scale={scale}",
            "labels": {"0": "background", "1": "liver", "2": "tumour"},
            "numTraining": subjects,
            "training": [
                {"image": f"./imagesTr/im{i}.nii.gz", "label": f"./labelsTr/lb{i}.nii.gz"} for i in range(subjects)
            ],
        },
    )
    if heldout:
        test_info = {
            f"im{i}": write(i, phase, out / "test" / "imagesTs", out / "test_labels")
            for i, phase in enumerate(test_phases, start=subjects)
        }
        write_json(out / "test" / "patient_info_test.json", test_info)
        written.append(out / "test" / "patient_info_test.json")
    remove_all_but(out, written + [out / "train" / "patient_info_train.json", out / "train" / "dataset.json"])


COHORT_LAYOUT = ("train", "test", "test_labels")  # write_synthetic_cohort's top-level entries


def _check_arguments(subjects, heldout, seed, scale) -> None:
    if isinstance(subjects, bool) or not isinstance(subjects, (int, np.integer)) or subjects < 1:
        raise InputError(f"synthetic cohort: subjects must be a positive integer, got {subjects!r}")
    if isinstance(heldout, bool) or not isinstance(heldout, (int, np.integer)) or heldout < 0:
        raise InputError(f"synthetic cohort: heldout must be a non-negative integer, got {heldout!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"synthetic cohort: seed must be a non-negative integer, got {seed!r}")
    if not isinstance(scale, (int, float, np.floating, np.integer)) or not np.isfinite(scale) or not 1 <= scale <= 16:
        raise InputError(f"synthetic cohort: scale must be a number in [1, 16], got {scale!r}")


# --------------------------------------------------------------------------- grid


@dataclass(frozen=True)
class Grid:
    """A voxel grid centred on the world origin; axes (x: right, y: anterior, z: superior)."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    def axis(self, a: int) -> np.ndarray:
        """World coordinates (mm) of the voxel centres along axis `a`."""
        n, s = self.shape[a], self.spacing[a]
        return ((np.arange(n) - (n - 1) / 2) * s).astype(np.float32)

    @property
    def affine(self) -> np.ndarray:
        """Diagonal RAS affine: canonical already, so load_nifti keeps the slice axis last."""
        aff = np.diag([*self.spacing, 1.0])
        aff[:3, 3] = [-(n - 1) / 2 * s for n, s in zip(self.shape, self.spacing)]
        return aff

    def window(self, lo, hi) -> tuple[slice, slice, slice]:
        """Index slices of the voxels whose centres lie in the world box [lo, hi]."""
        out = []
        for a in range(3):
            n, s = self.shape[a], self.spacing[a]
            i0 = int(np.ceil(lo[a] / s + (n - 1) / 2))
            i1 = int(np.floor(hi[a] / s + (n - 1) / 2)) + 1
            out.append(slice(min(max(i0, 0), n), min(max(i1, 0), n)))
        return tuple(out)

    def coords(self, box: tuple[slice, slice, slice]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World coordinates of `box`, shaped to broadcast as (H,1,1), (1,W,1), (1,1,D)."""
        x, y, z = (self.axis(a)[box[a]] for a in range(3))
        return x[:, None, None], y[None, :, None], z[None, None, :]


@dataclass(frozen=True)
class Acquisition:
    """The scale-1 acquisition of one subject: spacing (mm) and matrix."""

    inplane: float
    thickness: float
    matrix: tuple[int, int]
    slices: int

    @property
    def fov(self) -> tuple[float, float, float]:
        return (
            self.matrix[0] * self.inplane,
            self.matrix[1] * self.inplane,
            self.slices * self.thickness,
        )


def acquisition(rng: np.random.Generator) -> Acquisition:
    """Draw the scale-1 acquisition: ATLAS's spacing ranges; a field of view fitted to an
    abdomen, so the matrix is at most 512 (fine spacing) and about 270-330 (coarse)."""
    inplane = float(rng.uniform(*INPLANE_MM))
    thickness = float(rng.uniform(*THICKNESS_MM))
    fov_lr = float(rng.uniform(*FOV_MM))
    fov_ap = max(fov_lr * float(rng.uniform(0.75, 1.0)), MIN_FOV_AP_MM)
    matrix = (min(round(fov_lr / inplane), MATRIX), min(round(fov_ap / inplane), MATRIX))
    coverage = float(rng.uniform(*COVERAGE_MM))
    slices = int(np.clip(round(coverage / thickness), *SLICES))
    return Acquisition(inplane, thickness, matrix, slices)


def grid_at(acq: Acquisition, scale: float) -> Grid:
    """The scale-1 acquisition coarsened by `scale` (same field of view, >= MIN_SLICES)."""
    h, w = (max(int(round(n / scale)), 8) for n in acq.matrix)
    depth = max(int(round(acq.slices / scale)), MIN_SLICES) if scale != 1 else acq.slices
    # Spacing rounded to 0.1 micrometre so the NIfTI header stores what we report.
    inplane, thickness = round(acq.inplane * scale, 4), round(acq.thickness * scale, 4)
    return Grid((h, w, depth), (inplane, inplane, thickness))


# --------------------------------------------------------------------------- fields


class SmoothField:
    """A smooth unit-variance random field in physical space.

    White noise on a lattice of step corr/2 over the box [lo, hi] (mm), interpolated with
    a normalised Gaussian kernel of the same width. The kernel is separable, so sampling
    on a rectilinear grid is three matrix products; points outside the box take the value
    at the nearest box face. The values depend on the box and the random stream only,
    never on the grid that samples them.
    """

    def __init__(self, rng: np.random.Generator, lo, hi, corr_mm: float):
        self.step = corr_mm / 2.0
        self.nodes = [
            (lo[a] + self.step * np.arange(int(np.ceil((hi[a] - lo[a]) / self.step)) + 1)).astype(np.float32)
            for a in range(3)
        ]
        self.values = rng.standard_normal(tuple(len(n) for n in self.nodes), dtype=np.float32)

    def _weights(self, coords: np.ndarray, a: int) -> tuple[np.ndarray, slice]:
        nodes = self.nodes[a]
        c = np.clip(np.ravel(coords).astype(np.float32), nodes[0], nodes[-1])
        # Only nodes within 5 kernel widths matter; dropping the rest keeps products small.
        keep = slice(
            max(int(np.searchsorted(nodes, c.min() - 5 * self.step)), 0),
            int(np.searchsorted(nodes, c.max() + 5 * self.step, side="right")),
        )
        w = np.exp(-0.5 * ((c[:, None] - nodes[None, keep]) / self.step) ** 2)
        w /= np.sqrt((w * w).sum(axis=1, keepdims=True))  # unit variance at every point
        return w.astype(np.float32), keep

    def __call__(self, x, y, z) -> np.ndarray:
        """The field on the rectilinear grid x (H) x y (W) x z (D): an (H, W, D) array."""
        (wx, kx), (wy, ky), (wz, kz) = self._weights(x, 0), self._weights(y, 1), self._weights(z, 2)
        g = self.values[kx, ky, kz]
        out = np.tensordot(wx, g, axes=([1], [0]))  # (H, ny, nz)
        out = np.tensordot(out, wy, axes=([1], [1]))  # (H, nz, W)
        out = np.tensordot(out, wz, axes=([1], [1]))  # (H, W, D)
        return out


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum: a union of implicit shapes without a crease."""
    h = np.clip(0.5 + 0.5 * (b - a) / k, 0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def _ellipse2d(x, y, cx, cy, ax, ay) -> np.ndarray:
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def _segment_distance(x, y, z, p0, p1) -> tuple[np.ndarray, np.ndarray]:
    """Distance (mm) from grid points to the segment p0-p1, and the position t in [0, 1]."""
    d = np.asarray(p1, np.float32) - np.asarray(p0, np.float32)
    dx, dy, dz = x - p0[0], y - p0[1], z - p0[2]
    t = np.clip((dx * d[0] + dy * d[1] + dz * d[2]) / float(d @ d), 0.0, 1.0)
    dist = np.sqrt((dx - t * d[0]) ** 2 + (dy - t * d[1]) ** 2 + (dz - t * d[2]) ** 2)
    return dist, t


# --------------------------------------------------------------------------- anatomy


class _Body:
    """The trunk: an ellipse flattened at the back (skin fat, muscle wall, peritoneal
    cavity) whose cross-section breathes slowly along z, and the tubes running along z
    behind it (spine, spinal canal, paraspinal muscles, aorta, inferior vena cava)."""

    def __init__(self, rng: np.random.Generator):
        j = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
        self.A, self.B, self.yb = j(140, 170), j(100, 125), j(-10, 10)
        self.b_post = self.B * j(0.85, 0.95)
        self.t_fat, self.t_musc = j(8, 30), j(8, 14)
        self.period, self.phase = j(250, 400), j(0, 2 * np.pi)
        self.yv, self.rv = self.yb - self.b_post + self.t_fat + j(40, 50), j(15, 19)
        self.aorta = (-j(10, 20), self.yv + self.rv + 12, j(9, 13))
        self.ivc_x = j(18, 28)

    def cavity_half_width(self) -> float:
        return self.A - self.t_fat - self.t_musc

    def within(self, x, y, z, shrink: float = 0.0) -> np.ndarray:
        """Inside the outline shrunk by `shrink` mm: 0 skin, t_fat muscle, t_fat+t_musc cavity."""
        a, b_ant, b_post = self.A - shrink, self.B - shrink, self.b_post - shrink
        r = (x / a) ** 2 + ((y - self.yb) / np.where(y > self.yb, b_ant, b_post)) ** 2
        wave = (1 + 0.04 * np.sin(2 * np.pi * z / self.period + self.phase)) ** 2
        return r <= wave.astype(np.float32)

    def cavity(self, x, y, z) -> np.ndarray:
        return self.within(x, y, z, self.t_fat + self.t_musc)

    def tubes(self, x, y) -> list[tuple[np.ndarray, int]]:
        """2D masks (broadcast along z) of the structures behind the cavity, in paint order."""
        yv, rv = self.yv, self.rv
        ax, ay, ar = self.aorta
        return [
            (_ellipse2d(x, y, -(rv + 20), yv - rv - 6, 22, 18) <= 1, MUSCLE),
            (_ellipse2d(x, y, rv + 20, yv - rv - 6, 22, 18) <= 1, MUSCLE),
            (_ellipse2d(x, y, 0, yv, rv, rv * 0.85) <= 1, BONE),
            (_ellipse2d(x, y, 0, yv - rv - 8, 6, 6) <= 1, CSF),
            (_ellipse2d(x, y, ax, ay, ar, ar) <= 1, AORTA),
            (_ellipse2d(x, y, self.ivc_x, yv + rv + 14, 13, 9) <= 1, VEIN),
        ]

    def solid(self, x, y) -> np.ndarray:
        """Where no organ may go: the union of the tubes."""
        out = np.zeros(np.broadcast_shapes(np.shape(x), np.shape(y)), bool)
        for mask, _ in self.tubes(x, y):
            out |= mask
        return out


class _Liver:
    """The liver as an implicit shape F(u) <= 0 in canonical coordinates u = (p - c) / k:
    a smooth union of a right lobe (longer downwards) and a tapering left lobe, rotated
    about z, with low-frequency bumps. F depends on u only, so the shape scales with k."""

    BOX = ((-190.0, -130.0, -130.0), (110.0, 130.0, 120.0))  # canonical extent, mm

    def __init__(self, rng: np.random.Generator):
        j = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
        self.right = (
            62 * j(0.9, 1.1),
            78 * j(0.9, 1.1),
            62 * j(0.9, 1.1),
            82 * j(0.85, 1.15),
        )  # a, b, c_sup, c_inf
        size = j(0.75, 1.2)
        self.left_centre = (-72 * j(0.9, 1.1), 28 * j(0.7, 1.2), 20 * j(0.6, 1.3))
        self.left = (68 * size, 42 * size, 32 * size)
        self.taper = j(0.3, 0.6)
        self.angle = np.deg2rad(j(-12, 12))
        self.bumps = j(0.08, 0.16)
        self.field = SmoothField(rng, *self.BOX, corr_mm=j(50, 80))

    def implicit(self, ux, uy, uz) -> np.ndarray:
        """F(u): negative inside. ux, uy, uz broadcast as (H,1,1), (1,W,1), (1,1,D)."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        rx, ry = c * ux + s * uy, -s * ux + c * uy
        a, b, c_sup, c_inf = self.right
        cz = np.where(uz > 0, c_sup, c_inf).astype(np.float32)
        f_right = np.sqrt((rx / a) ** 2 + (ry / b) ** 2 + (uz / cz) ** 2) - 1.0
        lx, ly, lz = rx - self.left_centre[0], ry - self.left_centre[1], uz - self.left_centre[2]
        al, bl, cl = self.left
        # The left lobe thins toward its tip (patient's left, x negative).
        t = 1.0 - self.taper * np.clip((1.0 - lx / al) / 2.0, 0.0, 1.0)
        f_left = np.sqrt((lx / al) ** 2 + (ly / (bl * t)) ** 2 + (lz / (cl * t)) ** 2) - 1.0
        return _smin(f_right, f_left, 0.25) + self.bumps * self.field(np.ravel(ux), np.ravel(uy), np.ravel(uz))


@dataclass
class _PlacedLiver:
    """The liver in the world: F((p - centre) / k) <= 0, inside the cavity, off the tubes."""

    shape: _Liver
    body: _Body
    centre: np.ndarray
    k: float

    LATTICE_MM = 6.0  # the fixed world lattice that measures the volume (~1 %) and depths

    def mask(self, x, y, z) -> np.ndarray:
        c, k = self.centre, self.k
        inside = self.shape.implicit((x - c[0]) / k, (y - c[1]) / k, (z - c[2]) / k) <= 0
        return inside & self.body.cavity(x, y, z) & ~self.body.solid(x, y)

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = (np.asarray(b, np.float32) for b in _Liver.BOX)
        return self.centre + self.k * lo, self.centre + self.k * hi

    def lattice(self) -> tuple[list[np.ndarray], np.ndarray]:
        """Axes and mask on the world lattice (multiples of LATTICE_MM: grid-independent)."""
        h = self.LATTICE_MM
        axes = [
            (np.arange(np.floor(lo / h), np.ceil(hi / h) + 1) * h).astype(np.float32) for lo, hi in zip(*self.box())
        ]
        return axes, self.mask(axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :])


def _place_liver(rng: np.random.Generator, body: _Body, top_z: float) -> tuple[_PlacedLiver, list, np.ndarray]:
    """Put the liver in the right upper quadrant, dome below the top of the window, and
    scale it until its volume, clipped by the cavity and the tubes, meets the drawn one."""
    j = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    shape = _Liver(rng)
    target = j(*LIVER_LITRES) * 1e6
    margin, dy, gap = j(0, 12), j(-12, 12), j(5, 35)
    a_right, _, c_sup, _ = shape.right

    def placed(k: float) -> _PlacedLiver:
        centre = [
            body.cavity_half_width() - margin - k * a_right,
            body.yb + dy,
            top_z - gap - k * c_sup,
        ]
        return _PlacedLiver(shape, body, np.array(centre, np.float32), k)

    liver = placed(1.0)
    for attempt in range(6):
        axes, inside = liver.lattice()
        volume = float(inside.sum()) * liver.LATTICE_MM**3
        if abs(volume / target - 1) < 0.02 or attempt == 5:
            break
        liver = placed(liver.k * (target / max(volume, 1.0)) ** (1 / 3))
    return liver, axes, inside


@dataclass
class _Tumor:
    centre: np.ndarray  # world mm
    radius: float  # mm
    axes: np.ndarray  # relative semi-axes
    rotation: np.ndarray
    capsule_mm: float  # 0: none
    necrosis: float  # relative radius of the necrotic core; 0: none
    contrast: float  # multiplies the tumour-liver level difference
    field: SmoothField  # lobulation, in units of the radius

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        r = 1.35 * self.radius * float(self.axes.max())
        return self.centre - r, self.centre + r

    def shape(self, x, y, z) -> np.ndarray:
        """Normalised radius: < 1 inside, 1 on the (lobulated) surface."""
        d = [x - self.centre[0], y - self.centre[1], z - self.centre[2]]
        v = [sum(self.rotation[i, j] * d[j] for j in range(3)) / (self.radius * self.axes[i]) for i in range(3)]
        q = np.sqrt(v[0] ** 2 + v[1] ** 2 + v[2] ** 2)
        lob = self.field(*(np.ravel(di) / self.radius for di in d))
        return q * (1.0 + 0.08 * lob)


def _draw_tumors(rng: np.random.Generator, axes: list[np.ndarray], inside: np.ndarray, half_z: float) -> list[_Tumor]:
    """1 to 8 tumours (1 + Poisson, mean 2: every ATLAS patient has an HCC): a dominant one
    from nodule to mass (DOMINANT_MM, log-uniform) and smaller satellites (SATELLITE_MM),
    centred deep enough in the liver for their size and inside the field of view
    (|z| <= half_z mm), so that every subject's label map holds a tumour."""
    h = _PlacedLiver.LATTICE_MM
    depth = edt.edt(np.ascontiguousarray(inside), anisotropy=(h, h, h), black_border=True)[inside]
    candidates = np.argwhere(inside)
    z = axes[2][candidates[:, 2]]
    tumors = []
    for i in range(1 + min(int(rng.poisson(EXTRA_TUMORS_MEAN)), 7)):
        low, high = DOMINANT_MM if i == 0 else SATELLITE_MM
        diameter = float(np.exp(rng.uniform(np.log(low), np.log(high))))
        radius = diameter / 2
        deep = depth >= min(0.6 * radius, 0.8 * depth.max())
        in_view = np.abs(z) <= half_z - min(0.5 * radius, 0.5 * half_z)
        ok = np.flatnonzero(deep & in_view)
        if not len(ok):  # a liver cut by the field of view: the deepest points in it
            ok = np.flatnonzero(in_view) if in_view.any() else np.flatnonzero(deep)
        pick = candidates[ok[int(rng.integers(len(ok)))]]
        centre = np.array([axes[a][pick[a]] for a in range(3)]) + rng.uniform(-3.0, 3.0, 3)
        tumors.append(
            _Tumor(
                centre=centre.astype(np.float32),
                radius=radius,
                axes=rng.uniform(0.8, 1.2, 3),
                rotation=_rotation(rng),
                capsule_mm=float(rng.uniform(1.5, 3.0)) if diameter >= 25 and rng.random() < 0.6 else 0.0,
                necrosis=float(rng.uniform(0.25, 0.4)) if diameter >= 40 and rng.random() < 0.6 else 0.0,
                contrast=float(rng.uniform(0.6, 1.4)),
                field=SmoothField(rng, (-1.5,) * 3, (1.5,) * 3, corr_mm=0.8),
            )
        )
    return tumors


@dataclass
class Subject:
    """One generated subject: the volumes as written and its patient_info entry."""

    image: np.ndarray  # int16 (H, W, D)
    label: np.ndarray  # uint8 (H, W, D): 0 background, 1 liver, 2 tumour
    tissue: np.ndarray  # uint8 (H, W, D): tissue codes, for inspection
    affine: np.ndarray
    spacing: tuple[float, float, float]
    phase: str
    info: dict


def draw_subject(seed: int, index: int, phase: str, scale: float = 1.0) -> Subject:
    """Generate subject `index` of the cohort `seed` in contrast phase `phase`.

    Independent random streams (acquisition, anatomy, contrast, noise, metadata) derive
    from (seed, index), so the anatomy depends neither on `scale` nor on the cohort size.
    """
    if phase not in ATLAS_PHASE_COUNTS:
        raise InputError(
            f"synthetic subject im{index}: unknown phase {phase!r} (expected one of {list(ATLAS_PHASE_COUNTS)})"
        )
    acq_rng, anat_rng, contrast_rng, noise_rng, info_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence([seed, index]).spawn(5)
    )
    acq = acquisition(acq_rng)
    grid = grid_at(acq, scale)
    fov = acq.fov  # scale-1 field of view: anatomy and fields are placed in it
    tissue, tumors = _anatomy(anat_rng, grid, fov)
    image = _intensities(contrast_rng, noise_rng, grid, fov, tissue, tumors, phase)
    label = np.zeros(grid.shape, np.uint8)
    label[np.isin(tissue, LIVER_TISSUES)] = 1
    label[np.isin(tissue, TUMOR_TISSUES)] = 2
    machine, sequence = MACHINES[int(info_rng.integers(len(MACHINES)))]
    date = np.datetime64("2012-01-01") + int(info_rng.integers(0, 10 * 365))
    info = {"contrast_phase": phase, "machine": machine, "sequence": sequence, "date": str(date)}
    return Subject(image, label, tissue, grid.affine, grid.spacing, phase, info)


def _paint(tissue: np.ndarray, grid: Grid, lo, hi, paint) -> None:
    """Call paint(sub, x, y, z) on the view of `tissue` inside the world box [lo, hi]."""
    win = grid.window(lo, hi)
    if all(s.stop > s.start for s in win):
        paint(tissue[win], *grid.coords(win))


def _anatomy(rng: np.random.Generator, grid: Grid, fov) -> tuple[np.ndarray, list[_Tumor]]:
    """The tissue map of one subject on `grid`, and its tumours (for their contrast).

    Structures are painted in order, each over what lies below: body layers, bowel gas,
    tubes, solid organs, the liver, its vessels, the tumours (confined to the liver).
    """
    j = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    half_z = fov[2] / 2
    x, y, z = grid.coords(tuple(slice(0, n) for n in grid.shape))
    tissue = np.zeros(grid.shape, np.uint8)

    body = _Body(rng)
    for shrink, code in ((0.0, FAT), (body.t_fat, MUSCLE), (body.t_fat + body.t_musc, SOFT)):
        tissue[np.broadcast_to(body.within(x, y, z, shrink), grid.shape)] = code

    # Bowel gas: pockets where a smooth field peaks, inside the peritoneal soft tissue.
    body_lo = np.array([-body.A, body.yb - body.B, -half_z], np.float32) - 10
    body_hi = np.array([body.A, body.yb + body.B, half_z], np.float32) + 10
    gas_field, gas_level = SmoothField(rng, body_lo, body_hi, corr_mm=j(18, 26)), j(1.3, 1.8)

    def gas(sub, xs, ys, zs):
        sub[(gas_field(xs, ys, zs) > gas_level) & (sub == SOFT)] = GAS

    _paint(tissue, grid, body_lo, body_hi, gas)
    for mask, code in body.tubes(x, y):
        tissue[np.broadcast_to(mask, grid.shape)] = code

    liver, lattice_axes, lattice_inside = _place_liver(rng, body, half_z)
    zl = float(liver.centre[2])

    # Organs the liver may push against: kidneys (with a darker sinus), spleen, stomach.
    def ellipsoid(centre, semi_axes, jitter):
        return np.array(centre, np.float32), np.array(semi_axes, np.float32) * j(*jitter)

    organs = []
    for side in (1, -1):  # the left kidney sits a little higher
        kidney = [side * j(60, 75), body.yv + j(0, 10), zl - j(45, 75) + 15 * (side < 0)]
        organs.append((*ellipsoid(kidney, [26, 24, 50], (0.9, 1.1)), "kidney"))
    spleen = [-j(85, 100), body.yv + j(25, 45), zl + j(-10, 20)]
    organs.append((*ellipsoid(spleen, [28, 50, 55], (0.8, 1.15)), "spleen"))
    stomach = [-j(30, 60), body.yb + j(20, 50), zl + j(-10, 20)]
    organs.append((*ellipsoid(stomach, [45, 32, 40], (0.7, 1.2)), "stomach"))
    for c, ax, name in organs:

        def organ(sub, xs, ys, zs, c=c, ax=ax, name=name):
            r = ((xs - c[0]) / ax[0]) ** 2 + ((ys - c[1]) / ax[1]) ** 2 + ((zs - c[2]) / ax[2]) ** 2
            ok = body.cavity(xs, ys, zs) & ~body.solid(xs, ys) & (r <= 1)
            if name == "kidney":
                sub[ok] = CORTEX
                sinus = ((xs - c[0] + np.sign(c[0]) * 6) / (ax[0] * 0.55)) ** 2 + ((ys - c[1]) / (ax[1] * 0.55)) ** 2
                sub[ok & (sinus + ((zs - c[2]) / (ax[2] * 0.7)) ** 2 <= 1)] = MEDULLA
            elif name == "spleen":
                sub[ok] = SPLEEN
            else:
                sub[ok] = STOMACH
                sub[ok & (r > 0.8)] = SOFT  # the gastric wall

        _paint(tissue, grid, c - ax, c + ax, organ)

    # The liver, rasterised in the world box of its lattice mask.
    pts = np.argwhere(lattice_inside)
    lo = np.array([lattice_axes[a][pts[:, a].min()] for a in range(3)]) - 2 * liver.LATTICE_MM
    hi = np.array([lattice_axes[a][pts[:, a].max()] for a in range(3)]) + 2 * liver.LATTICE_MM

    def parenchyma(sub, xs, ys, zs):
        sub[liver.mask(xs, ys, zs)] = LIVER

    _paint(tissue, grid, lo, hi, parenchyma)

    # Portal and hepatic vein branches (canonical end points, mm), tapering from the hilum.
    p0 = liver.centre + liver.k * np.array([-25, -5, -15]) * j(0.9, 1.1)
    for end, r0 in (
        ((45, 35, 10), 6),
        ((45, -40, 0), 6),
        ((-110, 30, 25), 5),
        ((0, -30, 70), 5),
        ((60, 0, -50), 4),
    ):
        p1 = liver.centre + liver.k * np.array(end) * j(0.8, 1.1)
        radius = r0 * j(0.7, 1.2)

        def vessel(sub, xs, ys, zs, p1=p1, radius=radius):
            dist, t = _segment_distance(xs, ys, zs, p0, p1)
            sub[(dist <= radius * (1.0 - 0.6 * t)) & (sub == LIVER)] = HEPATIC_VESSEL

        _paint(tissue, grid, np.minimum(p0, p1) - radius, np.maximum(p0, p1) + radius, vessel)

    tumors = _draw_tumors(rng, lattice_axes, lattice_inside, half_z)
    for t in tumors:

        def tumor(sub, xs, ys, zs, t=t):
            q = t.shape(xs, ys, zs)
            organ = np.isin(sub, LIVER_TISSUES + TUMOR_TISSUES) & (q <= 1)
            sub[organ] = TUMOR
            if t.capsule_mm:
                sub[organ & (q > 1 - t.capsule_mm / t.radius)] = CAPSULE
            if t.necrosis:
                sub[organ & (q <= t.necrosis)] = NECROSIS

        _paint(tissue, grid, *t.box(), tumor)
    return tissue, tumors


def _intensities(contrast_rng, noise_rng, grid: Grid, fov, tissue, tumors, phase: str) -> np.ndarray:
    """MR signal: phase-dependent tissue levels, texture, bias field and Rician noise."""
    j = lambda lo, hi: float(contrast_rng.uniform(lo, hi))  # noqa: E731
    table = np.array([_LEVELS[c] for c in range(len(_LEVELS))], np.float32)  # (tissues, 4)
    if phase in _PHASE_COLUMN:
        levels = table[:, _PHASE_COLUMN[phase]].copy()
    else:  # "unkown": an arbitrary mixture of the four contrast states
        levels = table @ contrast_rng.dirichlet(np.ones(4)).astype(np.float32)
    levels *= contrast_rng.uniform(0.92, 1.08, len(levels)).astype(np.float32)
    texture = np.zeros(len(levels), np.float32)
    for code, amp in _TEXTURE.items():
        texture[code] = amp
    signal = levels[tissue]

    # Per-tumour contrast: each lesion enhances more or less than the typical one.
    liver_level = levels[LIVER]
    for t in tumors:
        twin = grid.window(*t.box())
        sub_t, sub_s = tissue[twin], signal[twin]
        is_t = sub_t == TUMOR
        sub_s[is_t] = liver_level + (levels[TUMOR] - liver_level) * t.contrast

    half = np.array(fov, np.float32) / 2
    box = (-half - 20, half + 20)
    full = tuple(slice(0, n) for n in grid.shape)
    x, y, z = grid.coords(full)
    tex = SmoothField(contrast_rng, *box, corr_mm=j(8, 12))
    body = bounding_box(tissue != AIR)  # texture is zero in air: sample only the body
    if body is not None:
        signal[body] *= 1.0 + texture[tissue[body]] * tex(*grid.coords(body))
    bias = SmoothField(contrast_rng, *box, corr_mm=j(200, 300))
    gradient = j(-0.15, 0.15) * y / half[1]
    signal *= np.exp(j(0.08, 0.25) * bias(x, y, z) + gradient)

    gain = j(250, 900) / liver_level
    sigma = j(0.02, 0.05) * liver_level
    real = signal + sigma * noise_rng.standard_normal(grid.shape, dtype=np.float32)
    imag = sigma * noise_rng.standard_normal(grid.shape, dtype=np.float32)
    magnitude = np.sqrt(real * real + imag * imag) * gain
    return np.clip(np.rint(magnitude), 0, np.iinfo(np.int16).max).astype(np.int16)
