"""``python -m bench``: the performance suite (bench/suite.py)."""

from bench.suite import main

main()
