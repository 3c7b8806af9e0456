# digits: two commands do everything on a fresh machine.
#   make run    install what is missing, start the whole stack on localhost (Ctrl-C stops it)
#   make test   install what is missing, run the whole test suite
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON  ?= python3.11
VENV    := .venv
PY      := $(VENV)/bin/python
MNIST   ?= ../shared/mnist
STAMP   := $(VENV)/.installed
REQS    := requirements-dev.txt services/recognizer/requirements.txt services/recognizer/requirements-train.txt services/recorder/requirements.txt services/gateway/requirements.txt
# The client package and its `digits` CLI (clients/python), with the stubs it ships.
REQS    += clients/python/pyproject.toml clients/python/hatch_build.py $(wildcard digits/v1/*.py*)

.PHONY: help run test browser fonts test-faults test-images images kube-tools deps cassandra protos train export-corrections eval eval-realworld eval-styles bench bench-recognizer bench-recorder bench-record-batching clean

help:
	@echo "make run      start Cassandra, recognizer, recorder and gateway (http://127.0.0.1:8080)"
	@echo "make test     run the whole test suite (unit, integration, end-to-end, the Helm chart on a real control plane)"
	@echo "make test-faults   the fault suite under load, 30 s of faults per case (make test runs it for 6 s)"
	@echo "make test-images   build the three images with podman, then run and check them"
	@echo "make images   build the three images with podman (localhost/digits-<service>:test)"
	@echo "make protos   regenerate digits/v1 from protos/"
	@echo "make train    retrain the model from MNIST=$(MNIST) (CORRECTIONS=data/corrections adds exported corrections)"
	@echo "make export-corrections   labelled recognitions as a training set in data/corrections (RECORDER_* settings)"
	@echo "make eval     test accuracy of the committed model"
	@echo "make eval-realworld   accuracy on generated real-world uploads, through the HTTP API"
	@echo "make eval-styles      styles MNIST lacks, not-a-digit refusal, numbers, calibration, through the HTTP API"
	@echo "make bench    the stack against a seed-style app under wrk, with ratios, stages and overload (BENCH_SECONDS=15)"
	@echo "make bench-recognizer / bench-recorder / bench-record-batching   benchmarks: tables and plots in benchmarks/results/"

# The virtual environment is rebuilt only when a requirements file changes.
$(STAMP): $(REQS)
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet -e clients/python
	touch $@

deps: $(STAMP)

# Java 17 and Maven, then the Cassandra jars from Maven Central (cached in .cache/).
cassandra: $(STAMP)
	$(PY) -m scripts.cassandra install

# helm, kwok, kubeconform, kube-score, buf, a Kubernetes control plane and promtool, built from the
# Go module proxy and Debian into ~/.cache/digits-tools (a no-op once cached; ~8 min cold).
kube-tools: $(STAMP)
	$(PY) -m scripts.kube tools >/dev/null

run: deps cassandra
	$(PY) -m scripts.devstack

test: deps cassandra kube-tools browser
	$(PY) -m pytest

# $(call apt_install,PACKAGES): apt-get install, as root or through sudo; the package lists are
# refreshed if it fails.
apt_install = sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  install="$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1)"; \
	  $$install || { $$sudo apt-get update -qq && $$install; }

# The real-browser tests (tests/browser) drive Debian's Chromium with its chromedriver: installed
# with apt-get when missing.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  $(call apt_install,chromium chromium-driver); \
	fi

# The fault cases of `make test`, each with five times the load; prints the table at the end.
test-faults: deps cassandra
	DIGITS_FAULT_SECONDS=30 $(PY) -m pytest tests/faults

images: $(STAMP)
	$(PY) -m scripts.images build

# Builds first (outside pytest's per-test timeout), then runs the containers.
test-images: images
	$(PY) -m pytest -m images tests/images

protos: $(STAMP)
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=. --pyi_out=. --grpc_python_out=. protos/digits/v1/*.proto

# CORRECTIONS=data/corrections adds what `make export-corrections` wrote (empty: MNIST and synthetic only).
CORRECTIONS ?=
train: $(STAMP)
	$(PY) -m services.recognizer.train --data $(MNIST) --out services/recognizer/model $(if $(CORRECTIONS),--corrections $(CORRECTIONS))

# Every labelled recognition as 28x28 PNGs + labels.csv, read from Cassandra with the RECORDER_* settings.
export-corrections: $(STAMP)
	$(PY) -m services.recorder.export_corrections --out $(or $(OUT),data/corrections)

eval: $(STAMP)
	$(PY) -m services.recognizer.evaluate --data $(MNIST) --model services/recognizer/model

# The printed digits and letters of the two evaluations are drawn in the machine's fonts: these
# packages are the fonts their committed figures were measured with (Chromium, installed for
# `make test`, brings Liberation; without it the printed set had 230 uploads instead of 390).
EVAL_FONTS = fonts-dejavu-core fonts-dejavu-extra fonts-liberation
fonts:
	@if ! dpkg -s $(EVAL_FONTS) >/dev/null 2>&1; then \
	  $(call apt_install,$(EVAL_FONTS)); \
	fi

eval-realworld: deps cassandra fonts
	$(PY) -m benchmarks.realworld --mnist $(MNIST)

# Writes benchmarks/results/styles.md and the figures into the model card.
eval-styles: deps cassandra fonts
	$(PY) -m benchmarks.styles --mnist $(MNIST)

# Not part of `make test`: several minutes of load on the whole machine. Results, tables and plots,
# in benchmarks/results/bench.md; BENCH_SECONDS=5 BENCH_OVERLOAD_SECONDS=10 for a quick pass.
bench: deps cassandra
	$(PY) -m benchmarks.http

bench-recognizer: deps
	$(PY) -m benchmarks.recognizer

bench-recorder: deps cassandra
	$(PY) -m benchmarks.recorder

bench-record-batching: deps cassandra
	$(PY) -m benchmarks.record_batching

clean:
	rm -rf .run .pytest_cache
