"""How a sweep shows it is alive: a progress line at least every
:data:`PROGRESS_EVERY_S` seconds, in every phase that can take longer (Ray's start is
announced before it begins, feature extraction counts images, the trial phase counts
trials: :class:`tune_food.sweep.launch.Progress`).

:class:`Counter` is the images counter of extraction: tqdm's bar on a terminal, and on
anything else (a log file, a pipe, ``tee``) plain whole lines, without the carriage
returns a bar redraws itself with.
"""

from __future__ import annotations

import time
from typing import TextIO

from tqdm import tqdm

PROGRESS_EVERY_S = 5.0   # the longest silence of a running sweep, in seconds


class Counter:
    """Counts ``total`` units (``unit``, e.g. ``"img"``; ``total`` None: not known ahead)
    done under the label ``desc``.

    ``update(n)`` adds ``n`` (0: only "still alive"); a line appears when
    :data:`PROGRESS_EVERY_S` passed since the last one. ``write(text)`` prints a line of
    its own; ``close()`` prints the final count. ``out=None`` prints nothing.
    """

    def __init__(self, total: int | None, unit: str, desc: str, out: TextIO | None):
        self.total, self.unit, self.desc, self.out = total, unit, desc, out
        self.done, self.start = 0, time.monotonic()
        self.last = self.start
        self.bar = None
        if out is not None and total != 0 and out.isatty():
            self.bar = tqdm(total=total, unit=unit, desc=desc, file=out, ascii=True,
                            mininterval=PROGRESS_EVERY_S, maxinterval=PROGRESS_EVERY_S,
                            ncols=80)

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif time.monotonic() - self.last >= PROGRESS_EVERY_S:
            self._line()

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.out)
        elif self.out is not None:
            print(text, file=self.out, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.total and self.done < self.total:
            self._line()   # interrupted: where it stopped
        elif self.total is None and self.last > self.start:
            self._line()   # a count that showed progress shows its end

    def _line(self) -> None:
        self.last = time.monotonic()
        if self.out is None or self.total == 0:
            return
        took = max(self.last - self.start, 1e-9)
        of = f"/{self.total}" if self.total else ""
        print(f"{self.desc}: {self.done}{of} {self.unit} ({self.done / took:.1f} "
              f"{self.unit}/s, {took:.0f} s)", file=self.out, flush=True)
