import torch

# The suite's models are tiny (H <= 32): one intra-op thread is several times faster than two
# fighting over CI's two cores (measured: a 150-step training run 1.6 s with one thread, 8.3 s
# with two while the other core was busy).
torch.set_num_threads(1)
