"""Test-wide settings: one intra-op thread, so timings stay sane on a shared 2-core machine."""

import torch

torch.set_num_threads(1)
