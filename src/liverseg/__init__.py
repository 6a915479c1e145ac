"""liverseg: liver and liver-tumour segmentation on MRI, after Lambert et al. (ATLAS 2023)."""

__version__ = "0.1.0"
