"""How fast the CLIs answer ``--help`` and an argument error (issue 14: under 1 s).

Each command runs ``--repeats`` times as a fresh process; the median wall time is
printed beside the interpreter's own start-up (``python -c pass``) measured in the same
run, so the ratio says what tune_food adds.

    python benchmarks/cli_latency.py [--repeats 5]
"""

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass (baseline)": ["-c", "pass"],
    "sweep --help": ["-m", "tune_food.sweep", "--help"],
    "sweep argument error": ["-m", "tune_food.sweep", "--grid", "--cpus-per-trial", "two"],
    "report --help": ["-m", "tune_food.report", "--help"],
    "predict --help": ["-m", "tune_food.predict", "--help"],
    "app --help": ["-m", "tune_food.app", "--help"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    medians = {}
    for label, argv in COMMANDS.items():
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            expected = 2 if "error" in label else 0
            if proc.returncode != expected:
                sys.exit(f"{label}: exit {proc.returncode}, expected {expected}: "
                         f"{proc.stderr.strip()[-500:]}")
        medians[label] = statistics.median(times)
    base = medians["python -c pass (baseline)"]
    print(f"{'command':<28} {'median s':>9} {'x baseline':>11}  goal")
    for label, t in medians.items():
        goal = "" if "baseline" in label else ("< 1 s ok" if t < 1 else "< 1 s MISSED")
        print(f"{label:<28} {t:9.3f} {t / base:11.1f}  {goal}")


if __name__ == "__main__":
    main()
