"""Training: the one loop (``loop``), the step it calls (``step``), the stage runner (``stages``).

Imported by ``rsbench train`` and the demo only; evaluation never imports training.
"""

from rsbench.training.loop import TrainingError, TrainingInterrupted, TrainResult, train
from rsbench.training.stages import default_out, teacher_for, train_or_reuse
from rsbench.training.step import TrainStep, build_losses

__all__ = ["TrainResult", "TrainStep", "TrainingError", "TrainingInterrupted", "build_losses", "default_out",
           "teacher_for", "train", "train_or_reuse"]
