# The two commands of the README, and a few conveniences.
.PHONY: demo test lint format bench clean

demo:            ## run the demo: mock camera, real encryption, real web UI
	scripts/demo

test:            ## the whole test suite (creates .venv, installs, ruff, pytest)
	scripts/test

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

format:
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .

clean:
	rm -rf .venv .pytest_cache build dist *.egg-info
