# The README's two commands: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: setup demo reproduce test report lint clean

$(BIN)/liverseg: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# the CPU build of torch first, so that the package's pin takes it instead of a CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

setup: $(BIN)/liverseg

# The whole DAG on the synthetic cohort, then the HTML report.
demo: setup
	$(BIN)/snakemake --cores $(CORES) --configfile config/demo.yaml
	$(BIN)/snakemake --cores $(CORES) --configfile config/demo.yaml --report results/report.html

# The paper's DAG on the synthetic cohort at CPU scale, with models that learn (config/synthetic.yaml;
# docs/reproduction.md). Its own results folder, so the demo's stays.
reproduce: setup
	$(BIN)/snakemake --cores $(CORES) --configfile config/synthetic.yaml
	$(BIN)/snakemake --cores $(CORES) --configfile config/synthetic.yaml --report results_synthetic/report.html

test: setup
	$(BIN)/python -m pytest -ra

# Format and lint, each its own step (CI runs them before the tests): ruff for the Python,
# snakefmt for the Snakefile and the rule files, Snakemake's own linter for the workflow.
lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/snakefmt --check .
	$(BIN)/snakemake --lint --configfile config/demo.yaml

clean:
	rm -rf results .snakemake
