"""Limits on counts a user gives, shared by the library and the command line. Imports
nothing, so the command line's ``--help`` stays fast."""

#: torch crashes (a segfault) on more threads than it can start
MAX_THREADS = 1024
#: torch takes seeds of 64 bits
MAX_SEED = 2 ** 64 - 1
