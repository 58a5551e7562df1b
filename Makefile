# fault-diag: every target installs what it needs into .venv on a fresh machine.
# GPU users: make install TORCH_SPEC='torch>=2.4,<3'   (default pins the local CPU build)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev,export,mat73,sweeps
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install test test-slow test-all data train train-matched targets verdicts sweep sweep-smoke study study-cpu report bench ui lint format typecheck clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]" "$(TORCH_SPEC)"
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the project (torch CPU build unless TORCH_SPEC is set)

test: $(STAMP) ## run the test suite (integration tests use FAULT_DIAG_DATA_DIR)
	$(PY) -m pytest -q

test-slow: $(STAMP) ## run only the slow tests
	$(PY) -m pytest -q -m slow

test-all: $(STAMP) ## run every test, slow ones included
	$(PY) -m pytest -q -m "slow or not slow"

data: $(STAMP) ## download / verify the CWRU files (or use FAULT_DIAG_DATA_DIR)
	$(VENV)/bin/fd-data download --setup cwru10
	$(VENV)/bin/fd-data verify

train: $(STAMP) ## the main job: a deployable DRSN-CW for any SNR (mixed protocol, cwru10; 2-4 min)
	$(VENV)/bin/fd-data download --setup cwru10
	$(VENV)/bin/fd-train experiment=quickstart $(ARGS)

train-matched: $(STAMP) ## DRSN-CW matched at 0 dB Gaussian (the DRSN paper's protocol; a one-SNR specialist)
	$(VENV)/bin/fd-data download --setup cwru10
	$(VENV)/bin/fd-train experiment=quickstart_matched $(ARGS)

TARGETS_OUT ?= docs/results/targets
targets: $(STAMP) ## mixed DRSN-CW vs matched specialists, full band and 0-4 kHz, seeds 0-2 (51 jobs, ~2 h on 2 cores)
	$(VENV)/bin/fd-data download --setup cwru10
	$(VENV)/bin/fd-train sweep=targets_mixed $(ARGS)
	$(VENV)/bin/fd-train sweep=targets_matched $(ARGS)
	$(VENV)/bin/fd-train sweep=targets_matched_band4k $(ARGS)
	$(PY) scripts/mixed_targets.py --experiment mixed_targets --out $(TARGETS_OUT)

VERDICT_RUN ?=
verdicts: $(STAMP) ## fd-predict's verdict on every cwru10 recording, clean and at 0 dB (VERDICT_RUN=<run folder or id>)
	@test -n "$(VERDICT_RUN)" || { echo "set VERDICT_RUN to a run folder or MLflow run id (e.g. make train's)"; exit 2; }
	$(VENV)/bin/fd-export "$(VERDICT_RUN)" --out outputs/verdict_bundle --force
	$(PY) scripts/verdicts.py --bundle outputs/verdict_bundle --out docs/results/verdicts.md $(ARGS)

sweep: $(STAMP) ## the SNR x noise x model x seed sweep, parallel jobs (ARGS to override)
	$(VENV)/bin/fd-data download --setup cwru10
	$(VENV)/bin/fd-train sweep=snr_grid trainer=quick $(ARGS)

sweep-smoke: $(STAMP) ## a 2-model x 3-SNR, 1-epoch sweep (minutes on a CPU)
	$(VENV)/bin/fd-train sweep=smoke $(ARGS)

STUDY_OUT ?= docs/results/study
STUDY_SWEEPS := study_mixed study_mixed_seeds study_band4k study_clean_train study_matched
study: $(STAMP) ## the full study on a GPU: 9 models x 10 seeds, 100 epochs, every protocol on both setups
	$(VENV)/bin/fd-data download --setup cwru10
	$(VENV)/bin/fd-train experiment=study sweep=study_mixed 'trainer.seed=range(0,10)' $(ARGS)
	$(VENV)/bin/fd-train experiment=study sweep=study_band4k 'model=$(ALL_MODELS)' 'trainer.seed=range(0,10)' $(ARGS)
	$(VENV)/bin/fd-train experiment=study sweep=study_clean_train 'model=$(ALL_MODELS)' 'trainer.seed=range(0,10)' $(ARGS)
	$(VENV)/bin/fd-train experiment=study sweep=study_matched 'model=$(ALL_MODELS)' 'noise=gaussian,pink,laplacian' 'noise.snr_db=-8,-4,0' 'trainer.seed=range(0,10)' $(ARGS)
	$(PY) scripts/study_results.py --experiment study --out docs/results/study_gpu

ALL_MODELS := drsn_cw,drsn_cs,resnet1d,convnet1d,se_resnet1d,resnet1d_aprelu,ran1d,se_felu_resnet1d,wdcnn
study-cpu: $(STAMP) ## the study sized for a 2-core CPU (96 runs, about an hour; docs/results.md says what is cut)
	$(VENV)/bin/fd-data download --setup cwru10
	@mkdir -p outputs; start=$$(date +%s); \
	for s in $(STUDY_SWEEPS); do $(VENV)/bin/fd-train experiment=study_cpu sweep=$$s $(ARGS) || exit $$?; done; \
	echo "study-cpu: training wall time $$(( $$(date +%s) - start )) s" | tee outputs/study_cpu_wall.txt
	$(PY) scripts/study_results.py --experiment study_cpu --out $(STUDY_OUT) --update-docs docs/results.md --update-readme README.md

report: $(STAMP) ## report of the latest sweep (ARGS='--experiment NAME' for another)
	$(VENV)/bin/fd-report $(if $(ARGS),$(ARGS),--sweep latest)

bench: $(STAMP) ## benchmark suite -> outputs/bench/ and docs/benchmarks.md (ARGS='--quick', '--device cuda')
	$(PY) scripts/bench.py --wait-load 1.5 --update-docs docs/benchmarks.md $(ARGS)

UI_PORT ?= 5000
ui: $(STAMP) ## MLflow dashboard on http://127.0.0.1:$(UI_PORT) over the project's store
	$(VENV)/bin/mlflow server --backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/mlflow.db}" \
	  --default-artifact-root "$(CURDIR)/mlartifacts" --host 127.0.0.1 --port $(UI_PORT)

lint: $(STAMP) ## ruff lint + format check
	$(VENV)/bin/ruff check fault_diag tests scripts
	$(VENV)/bin/ruff format --check fault_diag tests scripts

format: $(STAMP) ## apply ruff formatting and fixes
	$(VENV)/bin/ruff check --fix fault_diag tests scripts
	$(VENV)/bin/ruff format fault_diag tests scripts

typecheck: $(STAMP) ## mypy on the package
	$(VENV)/bin/mypy fault_diag

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache

results-hit-sm: $(STAMP) ## HIT-SM results (issue 16): 3 models x time/speed/rig splits x 3 seeds, mixed protocol, 12 epochs, about 20 min on 1 CPU thread
	@start=$$(date +%s); \
	for seed in 0 1 2; do for split in time:hit_mfs7 speed:hit_mfs7_speed_split rig:hit_cross_rig; do \
	  $(VENV)/bin/fd-train -m experiment=study_cpu data=$${split#*:} 'model=drsn_cw,resnet1d,wdcnn' hydra/launcher=basic \
	    trainer.seed=$$seed trainer.epochs=12 trainer.num_threads=1 data.train_hop=2048 \
	    'noise.test_kinds=[gaussian]' 'noise.test_snr_grid_db=[0]' noise.test_draws=1 \
	    tracking.experiment=hit_sm_cpu +tracking.tags.hit_split=$${split%%:*} $(ARGS) || exit $$?; \
	done; done; \
	echo "results-hit-sm: training wall time $$(( $$(date +%s) - start )) s"
	$(PY) scripts/hit_sm_results.py --experiment hit_sm_cpu --update-docs docs/results.md
