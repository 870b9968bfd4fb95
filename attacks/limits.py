"""Limits on counts a user gives, shared by the library and the command line. Imports
nothing, so the command line's ``--help`` stays fast."""

#: torch crashes (a segfault) on more threads than it can start
MAX_THREADS = 1024
#: the seeds a torch generator takes (64 bits, signed or not): [low, high)
SEED_RANGE = (-2 ** 63, 2 ** 64)
#: the command line takes the non-negative ones
MAX_SEED = SEED_RANGE[1] - 1
