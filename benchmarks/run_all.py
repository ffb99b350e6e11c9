"""Run every benchmark, one after the other; each prints its figures and the command that measures them.

    python benchmarks/run_all.py            (about an hour on 2 cores: the learning benchmark alone is
                                            about 40 minutes of one core, every scenario)
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIMCODE = [sys.executable, "-m", "simcode.cli"]

COMMANDS = [
    [sys.executable, str(HERE / "bench_codes.py")],
    SIMCODE + ["bench", "updates", "--agents", "10"],
    SIMCODE + ["bench", "updates", "--agents", "30", "--repeats", "3"],
    SIMCODE + ["bench", "updates", "--scenario", "simple_speaker_listener", "--repeats", "9"],
    SIMCODE + ["bench", "updates", "--scenario", "simple_crypto", "--repeats", "9"],
    SIMCODE + ["bench", "envs", "--scenario", "simple_spread", "--agents", "3"],
    SIMCODE + ["bench", "envs", "--scenario", "simple_spread", "--agents", "10"],
    [sys.executable, str(HERE / "bench_sim.py")],
    [sys.executable, str(HERE / "bench_study.py")],
    [sys.executable, str(HERE / "bench_sim_vs_real.py")],
    [sys.executable, str(HERE / "bench_marl_learning.py")],
]

for command in COMMANDS:
    print("== " + " ".join(Path(c).name if c.endswith(".py") else c for c in command[1:]), flush=True)
    subprocess.run(command, check=False)
