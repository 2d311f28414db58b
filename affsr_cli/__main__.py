import sys

try:
    from .cli.app import main
except ModuleNotFoundError as e:  # run from a source tree without its dependencies installed (e.g. outside the venv)
    if e.name is None or e.name.startswith("affsr_cli"):
        raise
    sys.exit(
        f"affsr: error: the package {e.name!r} is not installed in this Python ({sys.executable}); pip install . installs it"
    )

main()
