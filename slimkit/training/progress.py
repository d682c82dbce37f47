"""What a training run prints while it runs.

On a terminal, one bar redrawn in place::

    step  600/704 [=====================>   ] 85.2%  loss 0.0712  acc 0.977  6,120 ex/s  ETA 0:00:04

Otherwise (a log file, CI, a pipe), plain lines every ``log_every_n_steps``::

    step 600/704  loss 0.0712  accuracy 0.977  6,120 examples/s  lr 0.000727  ETA 0:00:04

After the first few calls (the first one includes compiling the step), it prints once how long the
whole run should take, measured on the steady-state speed.
"""

import datetime
import shutil
import sys
import time

WARMUP_CALLS = 3  # calls before the projection: the 1st compiles, the 2nd may retrace


def _duration(seconds):
    return str(datetime.timedelta(seconds=int(max(0, seconds))))


class Progress:
    """Progress display of one run.

    Args:
        start_step: The global step the run starts (or resumes) from.
        total_steps: The step it stops at.
        batch_size: Global batch size (examples per step).
        log_every_n_steps: Interval of the plain log lines.
        stream: Where to print (default: stdout); a bar is drawn only if it is a terminal.
        enabled: False prints nothing (e.g. a non-chief worker, or ``--json``... still logs).

    Example:
        >>> progress = Progress(0, 1000, 100, log_every_n_steps=100)
        >>> progress.update(100, loss=0.42, accuracy=0.88, learning_rate=0.5)
    """

    def __init__(self, start_step, total_steps, batch_size, log_every_n_steps=100, stream=None,
                 enabled=True):
        self.start_step = start_step
        self.total_steps = total_steps
        self.batch_size = batch_size
        self.log_every = log_every_n_steps
        self.stream = stream or sys.stdout
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._calls = 0
        self._steady_step = None  # step and time when the steady state began
        self._steady_time = None
        self._last_step = start_step
        self._last_time = time.monotonic()
        self._rate = None  # steps per second, steady state
        self._projected = False
        self._bar_drawn = False

    def update(self, step, loss, accuracy, learning_rate):
        """Reports the state after a call that ended at ``step``; prints if due."""
        now = time.monotonic()
        self._calls += 1
        if self._calls == WARMUP_CALLS:
            self._steady_step, self._steady_time = step, now
        elif self._calls > WARMUP_CALLS and step > self._steady_step:
            self._rate = (step - self._steady_step) / (now - self._steady_time)
        if not self.enabled:
            return
        if self._rate and not self._projected and self._calls >= WARMUP_CALLS + 1:
            self._projected = True
            remaining = (self.total_steps - step) / self._rate
            self._print_line(f"projected time: {_duration(remaining)} for the remaining "
                             f"{self.total_steps - step} steps ({self._rate * self.batch_size:,.0f} "
                             f"examples/s)")
        if self.tty:
            self._draw_bar(step, loss, accuracy)
        elif step // self.log_every > self._last_step // self.log_every or step == self.total_steps:
            self._print_line(
                f"step {step}/{self.total_steps}  loss {loss:.4f}  accuracy {accuracy:.3f}  "
                f"{self._speed()} examples/s  lr {learning_rate:.3g}  "
                f"ETA {self.eta(step)}")
        self._last_step, self._last_time = step, now

    def examples_per_sec(self):
        """Steady-state examples per second (0 until measured)."""
        return (self._rate or 0.0) * self.batch_size

    def _speed(self):
        """Examples/s for display: '?' until the steady-state speed is measured."""
        return f"{self.examples_per_sec():,.0f}" if self._rate else "?"

    def eta(self, step):
        """Remaining time as H:MM:SS, or '?' before the speed is known."""
        if step >= self.total_steps:
            return _duration(0)
        if not self._rate:
            return "?"
        return _duration((self.total_steps - step) / self._rate)

    def message(self, text):
        """Prints a line (above the bar, on a terminal)."""
        if self.enabled:
            self._print_line(text)

    def close(self):
        """Ends the bar's line."""
        if self._bar_drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._bar_drawn = False

    def _print_line(self, text):
        if self._bar_drawn:
            self.stream.write("\r\033[K")
            self._bar_drawn = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def _draw_bar(self, step, loss, accuracy):
        done = (step - self.start_step) / max(1, self.total_steps - self.start_step)
        stats = (f" {100 * step / max(1, self.total_steps):5.1f}%  loss {loss:.4f}  acc "
                 f"{accuracy:.3f}  {self._speed()} ex/s  ETA {self.eta(step)}")
        head = f"step {step:>{len(str(self.total_steps))}}/{self.total_steps} "
        width = shutil.get_terminal_size((100, 20)).columns
        bar_width = max(10, min(40, width - len(head) - len(stats) - 3))
        filled = int(bar_width * min(1.0, done))
        bar = "=" * filled + (">" if filled < bar_width else "") + " " * (bar_width - filled - 1)
        self.stream.write(f"\r\033[K{head}[{bar[:bar_width]}]{stats}"[:width + 6])
        self.stream.flush()
        self._bar_drawn = True
