# Two commands for a new user:
#   make demo   create .venv, install, run the offline demo workflow (results/demo/)
#   make test   create .venv, install, run the test suite (what CI runs)
VENV ?= .venv
PY := $(VENV)/bin/python
CORES ?= all
PYTEST_ARGS ?=

.PHONY: demo demo-run test mutation test-fast install clean-demo slurm-dry-run docs gpu-check gpu-wheels

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	# PyPI's torch/torchvision (not a local CPU-only wheel: piq needs a matching torchvision)
	PIP_FIND_LINKS= $(VENV)/bin/pip install --disable-pip-version-check -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(MAKE) demo-run

# The workflow, then `dvc commit` so that DVC knows the outputs are current (dvc.lock):
# a later `dvc status` is clean and `dvc repro` recomputes nothing.
demo-run:
	PATH=$(abspath $(VENV))/bin:$$PATH snakemake --cores $(CORES) --workflow-profile none
	PATH=$(abspath $(VENV))/bin:$$PATH dvc commit --force --quiet

test: install
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) -m pytest $(PYTEST_ARGS)

test-fast: install
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) -m pytest -m "not slow and not slurm" $(PYTEST_ARGS)

# Mutation testing of the core modules (mutmut, configured in pyproject.toml); slow, not in CI.
mutation: install
	$(VENV)/bin/pip install -q "mutmut==3.8.1"
	cd $(CURDIR) && OMP_NUM_THREADS=1 PATH=$(abspath $(VENV))/bin:$$PATH mutmut run --max-children 2; PATH=$(abspath $(VENV))/bin:$$PATH mutmut results

slurm-dry-run: install
	PATH=$(abspath $(VENV))/bin:$$PATH snakemake -n --profile workflow/profiles/slurm --config preset=paper

clean-demo:
	rm -rf results/demo .snakemake

# The documentation site (docs/, MkDocs): its home page is the README with links made relative to docs/.
docs: install
	sed 's#(docs/#(#g' README.md > docs/index.md
	$(VENV)/bin/mkdocs build --strict

# The GPU check (recon-restore bench gpu; at most 8 minutes on one H100 by the plan's estimate).
# A GPU machine here has PyTorch, h5py, PyYAML and NumPy but no network: `make gpu-wheels` on a
# machine with PyPI fetches the wheels it lacks (jsonschema and its dependencies) into
# .gpu-wheels/ (ignored; carry it), and `make gpu-check` there installs them beside the source
# and runs the check with the machine's python3. Results: results/gpu-check/<device>.{json,md}.
GPU_PYTHON ?= python3
gpu-wheels:
	$(PY) -m pip download -q jsonschema --only-binary=:all: --python-version 3.12 \
	  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu-wheels

gpu-check:
	@if [ -d .gpu-wheels ]; then $(GPU_PYTHON) -m pip install -q --no-index --find-links .gpu-wheels --target .gpu-site jsonschema; fi
	PYTHONPATH=src:.gpu-site $(GPU_PYTHON) -m recon_restore bench gpu --preset paper $(GPU_ARGS)
