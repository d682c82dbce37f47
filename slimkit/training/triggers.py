"""When the training loop acts: step- and time-based triggers, and the stop signals.

    clock = Clock(config)
    n = steps_this_call(step, config, total)      # a call ends on every step-based event
    if clock.due("checkpoint", step): ...

Each trigger fires every N steps and/or every S seconds (``save_summaries_steps`` /
``save_summaries_secs``, ``save_every_n_steps`` / ``save_every_n_secs``, ``eval_every_n_steps``,
``histogram_every_n_steps`` / ``_secs``, ``image_every_n_steps`` / ``_secs``); 0 or None turns
that half off.
"""

import signal
import time


def steps_this_call(step, config, total):
    """Steps of the next call: up to ``steps_per_call``, ending on every step-based event."""
    n = min(config.steps_per_call, total - step)
    for every in (config.log_every_n_steps, config.save_summaries_steps, config.save_every_n_steps,
                  config.eval_every_n_steps, config.histogram_every_n_steps,
                  config.image_every_n_steps):
        if every:
            n = min(n, every - step % every)
    return n


class Clock:
    """When summaries, checkpoints and evaluations are due (every N steps and/or N seconds)."""

    def __init__(self, config):
        c = config
        every_eval = c.eval_every_n_steps
        self.steps = {"summary": c.save_summaries_steps, "checkpoint": c.save_every_n_steps,
                      "eval": every_eval, "histogram": c.histogram_every_n_steps,
                      "image": c.image_every_n_steps}
        self.secs = {"summary": c.save_summaries_secs, "checkpoint": c.save_every_n_secs,
                     "eval": None, "histogram": c.histogram_every_n_secs,
                     "image": c.image_every_n_secs}
        # --keep-best without --eval-every-n-steps: evaluate whenever a checkpoint is written.
        self.eval_with_checkpoint = c.keep_best and not every_eval
        self.last = {k: time.monotonic() for k in self.steps}

    def due(self, what, step, checkpoint_now=False):
        """True if ``what`` is due after ``step`` (each step-or-time trigger fires once)."""
        if what == "eval" and self.eval_with_checkpoint:
            return checkpoint_now
        every, secs = self.steps[what], self.secs[what]
        now = time.monotonic()
        hit = bool(every and step % every == 0) or bool(secs and now - self.last[what] >= secs)
        if hit:
            self.last[what] = now
        return hit


class StopSignals:
    """SIGINT/SIGTERM set a flag the loop checks between calls (then checkpoint and return).

    A second SIGINT interrupts at once (KeyboardInterrupt), for a user who cannot wait.
    """

    def __init__(self):
        self.received = None
        self._previous = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.received == "SIGINT" and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc_info):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
