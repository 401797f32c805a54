# make run        set up .venv and run the main job (the task-count ablation, laptop preset)
# make test       set up .venv and run the default test suite (< 10 minutes on 2 cores)
# make test-full  also the tests marked slow
# make bench      side-by-side benchmarks against the reference implementation (JSON)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TORCH_PIN := torch==2.13.0

.PHONY: install run test test-full bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	OPENBLAS_NUM_THREADS=1 $(PY) -m experiments.task_scaling

test: $(STAMP)
	OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -m "not slow" -q

test-full: $(STAMP)
	OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) benchmarks/bench_tasks.py
	$(PY) benchmarks/compare_generators.py
	$(PY) benchmarks/bench_synthesis.py
	$(PY) benchmarks/bench_backbones.py
	$(PY) benchmarks/bench_training.py
	$(PY) benchmarks/bench_eval.py

clean:
	rm -rf $(VENV) runs .pytest_cache
