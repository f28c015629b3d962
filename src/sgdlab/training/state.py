"""Where a run stands after some iterations: everything its continuation needs, and nothing else.

A `TrainingState` is what a checkpoint holds (`sgdlab.runs.checkpoint`
writes it): the weights and batch norm's running statistics, the
optimizer's arrays, where the batch sampler, the dropout masks' and the
augmentation's generators are, the best evaluation's weights (with early
stopping), and the history so far. A run continued from it
(`Trainer.fit(..., resume=state)`) makes the same updates, draws the same
batches and masks and records the same history as the run that was not
interrupted, bit for bit (only `seconds`, a measurement, differs).
"""

from dataclasses import dataclass, field

from ..errors import SgdlabError
from .history import History


@dataclass
class TrainingState:
    iteration: int  # updates made
    params: dict  # name -> array
    statistics: dict  # batch norm's running_mean1, running_var1, ... (empty without it)
    optimizer: dict  # Optimizer.state()
    sampler: dict  # BatchSampler.state_after(iteration): plain JSON values
    dropout: list  # each Dropout layer's generator state: plain JSON values
    history: History  # up to `iteration`, with the evaluations recorded there on schedule
    augment: dict | None = None  # with augment, its generator's state: plain JSON values
    best: dict = field(default_factory=dict)  # with early_stop, the weights (and statistics) of the best evaluation

    @classmethod
    def capture(cls, trainer, sampler, iteration):
        """The state of `trainer` after `iteration` updates (its history's evaluations added when recorded)."""
        network = trainer.network
        return cls(iteration, {key: value.copy() for key, value in network.params.items()},
                   {key: value.copy() for key, value in network.running_statistics.items()},
                   {key: value.copy() for key, value in trainer.optimizer.state().items()},
                   sampler.state_after(iteration), [layer.rng.bit_generator.state for layer in network.dropout_layers],
                   History(trainer.history.iters_per_epoch, loss=list(trainer.history.loss[:iteration])),
                   trainer.augmenter.rng.bit_generator.state if trainer.augmenter is not None else None)

    def restore(self, trainer, sampler):
        """Put `trainer` (made from the same settings) and `sampler` where this state is; a state that does not
        fit them is an `SgdlabError`."""
        network = trainer.network
        try:
            if set(self.params) != set(network.params) or set(self.statistics) != set(network.running_statistics):
                raise ValueError(f"its arrays {sorted(self.params)} are not the network's {sorted(network.params)}")
            network.load_weights({**self.params, **self.statistics})
            for name, array in self.optimizer.items():
                _, _, key = name.partition("/")
                if key and array.shape != network.params[key].shape:
                    raise ValueError(f"the optimizer's {name} has shape {array.shape}, not {network.params[key].shape}")
            trainer.optimizer.load_state(self.optimizer)
            sampler.resume(self.sampler, self.iteration)
            for layer, state in zip(network.dropout_layers, self.dropout, strict=True):
                layer.rng.bit_generator.state = state
            if (trainer.augmenter is None) != (self.augment is None):
                raise ValueError("augmentation's generator is not where this run has one")
            if trainer.augmenter is not None:
                trainer.augmenter.rng.bit_generator.state = self.augment
            if self.best and set(self.best) != set(network.weights()):
                raise ValueError(f"its best weights {sorted(self.best)} are not the network's")
        except (KeyError, TypeError, ValueError) as exc:
            raise SgdlabError(f"the checkpoint does not fit this run ({exc})") from None
