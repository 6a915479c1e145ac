#!/usr/bin/env bash
# Run here, once, before benchmarks/gpu_check.sh goes to a GPU machine that has Python
# 3.12 with CUDA PyTorch but not liverseg's other dependencies (no package index there).
# Downloads, into .whl/ (ignored by git), the wheels the GPU benchmarks import beyond such
# an image: the versions pyproject.toml and .venv pin. SimpleITK's wheel (53 MB, TorchIO
# imports it) goes as its unpacked files in an xz tarball (28 MB; two minutes here), so
# that all of it travels within a 64 MiB working-tree limit (about 42 MB in all).
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="${PIP:-.venv/bin/python -m pip}"
WHEELS=(monai==1.6.1 torchio==1.2.1 nibabel==5.4.2 edt==3.1.2 connected-components-3d==4.1.1 jsonschema==4.26.0
        simpleitk==2.5.7 deprecated==1.3.1 jsonschema-specifications==2025.9.1
        referencing==0.37.0 rpds-py==2026.9.1)
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$p")
done
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
mkdir -p .whl
$PIP download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl "${WHEELS[@]}"
for wheel in .whl/simpleitk-*.whl; do
    unpacked="$(mktemp -d)"
    unzip -q "$wheel" -d "$unpacked"
    tar -cf - -C "$unpacked" . | xz -9 -T0 >"${wheel%.whl}.tar.xz"
    rm -rf "$unpacked" "$wheel"
done
du -sh .whl
