"""Training loops (the transformers ``Trainer`` and TRL's trainers) shown as one toxbench progress line.

The Trainer's own tqdm bar and its printed log dictionaries would fill a run's console; with
``quiet_trainer`` it reports through ``toxbench.progress`` instead (one line per run inside a
run's display), and its logs stay in ``trainer.state.log_history``.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from toxbench.progress import progress_bar


def quiet_trainer(trainer: Any, description: str, show_progress: bool = True) -> Any:
    """Swap the trainer's tqdm bar and log printer for a toxbench progress line (none without ``show_progress``)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback, TrainerCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if not show_progress:
        return trainer

    class _Progress(TrainerCallback):
        def __init__(self) -> None:
            self.stack = ExitStack()
            self.advance = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.advance = self.stack.enter_context(progress_bar(description, state.max_steps or None))

        def on_step_end(self, args, state, control, **kwargs):
            if self.advance:
                self.advance(1)

        def on_train_end(self, args, state, control, **kwargs):
            self.stack.close()
            self.advance = None

    trainer.add_callback(_Progress())
    return trainer
