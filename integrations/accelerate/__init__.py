"""AugShift in a Hugging Face Accelerate loop: the few helpers a multi-process loop needs.

`AugShift` itself needs no adapter: it is an `nn.Module`, so `accelerator.prepare(AugShift(model))`,
`accelerator.backward`, `accelerator.accumulate` and mixed precision work unchanged. What a
data-parallel loop must add (see `train.py` next to this file, and the README):

* `augshift.seeding.seed_generator` -- every process draws its own shifts, reproducibly, also after a resume;
* `augshift.distributed.average_buffers` -- BatchNorm statistics made equal on every process before evaluating /
  saving;
* `.checkpoints.weights_digest` -- a fingerprint of the weights, to check that the processes agree;
* `.checkpoints.save_checkpoint` / `.checkpoints.last_checkpoint` -- `accelerator.save_state` per epoch,
  atomically;
* `.checkpoints.save_final_model` -- the plain model's weights, loadable by the zoo it came from.
"""

__all__: list[str] = []  # the entry point is a module: python -m augshift.integrations.accelerate.train
