"""An eternal monitoring loop that keeps its history bounded with continue-as-new.
Run it: ``python -m examples.monitoring``."""
