# oxio — two commands: `make up` starts a local grid with an S3 endpoint,
# `make test` runs every test. Everything else here supports those two.

SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/oxio-target
CARGO ?= cargo
VENV ?= .venv
DATA ?= var/dev
OXIOD := $(CARGO_TARGET_DIR)/debug/oxiod

.PHONY: up test build deps venv s3-clients rust-test s3-test fmt lint clean-dev help

help:
	@echo "make up     build and start a local grid (S3 on 127.0.0.1:6007, data in $(DATA))"
	@echo "make test   run every test (Rust unit + cross-service, S3 clients against a real grid)"

## System packages: RocksDB's bindings need libclang; the S3 client tests need python3 + venv.
deps:
	@if ! ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing libclang-dev (needed to build RocksDB's bindings)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libclang-dev; \
	  else \
	    echo "libclang is missing: run  sudo apt-get install -y libclang-dev  then retry"; exit 1; \
	  fi; \
	fi

build: deps
	$(CARGO) build -p oxio-cli --bins

## Start a local grid in the foreground (Ctrl-C stops it; data survives restarts).
up: build
	$(OXIOD) dev --data $(DATA)

venv: $(VENV)/.installed

$(VENV)/.installed: tests/requirements.txt
	@if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv; \
	  else \
	    echo "python3 with venv is missing: run  sudo apt-get install -y python3 python3-venv  then retry"; exit 1; \
	  fi; \
	fi
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
	touch $@

## S3 clients from the system: rclone (Debian package). Installed when running as root;
## otherwise its tests are skipped and say how to install it.
s3-clients:
	@if ! command -v rclone >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing rclone (S3 client tests)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rclone; \
	  else \
	    echo "rclone is missing: its tests will be skipped (sudo apt-get install -y rclone)"; \
	  fi; \
	fi

## Every test: Rust (unit and cross-service), then real S3 clients against `oxiod dev`.
test: build venv rust-test s3-test

rust-test: deps
	$(CARGO) test --workspace

s3-test: build venv s3-clients
	OXIOD=$(OXIOD) PATH=$(abspath $(VENV))/bin:$$PATH $(VENV)/bin/pytest -v tests/s3

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

clean-dev:
	rm -rf $(DATA)
