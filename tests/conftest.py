import torch

# The suite's models are tiny (H <= 32): one intra-op thread is several times faster than two
# fighting over CI's two cores (measured: a 150-step training run 1.6 s with one thread, 8.3 s
# with two while the other core was busy).
torch.set_num_threads(1)

# Build (or load from the cache) the compiled sweep steps once, before any test runs: the one-time
# build note then goes to the session's output, never into a command's stderr that a test reads.
from gradlab.models.architectures import compiled  # noqa: E402

compiled.kernels(torch.empty(0))
