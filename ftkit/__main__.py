"""``python -m ftkit ...`` runs the ``ftkit`` command (useful when the script is not on PATH)."""
import sys

from ftkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
