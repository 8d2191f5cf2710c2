"""``python -m bench``: the harness of ``bench/harness.py``."""

from bench.harness import main

main()
