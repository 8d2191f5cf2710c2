"""Speed and the machine: switches that change how fast a run goes, never what it computes
(``conf/speed/``: the CPU layers, N steps per execution, malloc tuning, thread caps, a profiler
that costs nothing), and the precision ``trainer.precision=auto`` picks for the hardware."""
