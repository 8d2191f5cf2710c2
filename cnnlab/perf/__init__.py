"""Speed: switches that change how fast a run goes, never what it computes (``conf/speed/``), and
the process-wide settings behind them (malloc tuning, thread caps, a profiler that costs
nothing)."""
