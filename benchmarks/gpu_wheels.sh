#!/usr/bin/env bash
# Run here, once, before benchmarks/gpu_check.sh goes to a GPU machine that has Python
# 3.12 with CUDA PyTorch but not liverseg's other dependencies (no package index there).
# Downloads, into .whl/ (ignored by git), the wheels the GPU benchmarks import beyond such
# an image: the versions pyproject.toml and .venv pin. SimpleITK's wheel (53 MB, TorchIO
# imports it) goes as its unpacked files in an xz tarball (28 MB; two minutes here), so
# that all of it travels within a 64 MiB working-tree limit (about 42 MB in all).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
PACKAGES=(monai torchio nibabel edt connected-components-3d jsonschema
          simpleitk deprecated jsonschema-specifications referencing rpds-py)
# the versions installed in .venv (make setup), so that the pins live in pyproject.toml only
read -r -a WHEELS <<<"$("$PYTHON" -c 'import sys; from importlib.metadata import version
print(" ".join(f"{name}=={version(name)}" for name in sys.argv[1:]))' "${PACKAGES[@]}")"
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$p")
done
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
mkdir -p .whl
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl "${WHEELS[@]}"
for wheel in .whl/simpleitk-*.whl; do
    unpacked="$(mktemp -d)"
    unzip -q "$wheel" -d "$unpacked"
    tar -cf - -C "$unpacked" . | xz -9 -T0 >"${wheel%.whl}.tar.xz"
    rm -rf "$unpacked" "$wheel"
done
du -sh .whl
