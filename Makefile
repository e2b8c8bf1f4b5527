# Two targets are all a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo
PRESET ?= demo
# empty: lesionqsm uses every CPU this process may use (its --nprocs default)
NPROCS ?=

.PHONY: demo test venv lint bench clean image image-test

$(BIN)/lesionqsm: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/lesionqsm

demo: venv
	$(BIN)/lesionqsm synth $(DEMO_DIR)/bids --preset $(PRESET) --seed 0
	$(BIN)/lesionqsm $(DEMO_DIR)/bids $(DEMO_DIR)/derivatives participant \
		-w $(DEMO_DIR)/work $(if $(NPROCS),--nprocs $(NPROCS)) --skip-bids-validation
	@# 10 lesions in 4 patients support a cubic time basis and no patient-level covariate;
	@# the paper's model (degree 8, five covariates) needs a cohort like --preset paper
	$(BIN)/lesionqsm $(DEMO_DIR)/bids $(DEMO_DIR)/derivatives group --skip-bids-validation \
		--poly-degree 3 --covariates baseline_volume
	@echo
	@echo "Demo cohort:        $(DEMO_DIR)/bids"
	@echo "Ground truth:       $(DEMO_DIR)/bids/derivatives/groundtruth"
	@echo "Pipeline outputs:   $(DEMO_DIR)/derivatives  (per subject: sub-*/; group model: group/)"

test: venv
	$(BIN)/python -m pytest -ra --durations=15 -p no:cacheprovider

lint: venv
	$(BIN)/ruff check lesionqsm tests benchmarks

bench: venv
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

# The BIDS App image (podman, built from Debian's packages; see the README's container section)
image:
	bash .ci/image.sh build

# Build it, run the tiny cohort in it and compare with the same run here; export it
image-test: venv
	bash .ci/image.sh test

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
