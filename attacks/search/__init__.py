"""The searches over ``c``, one strategy per module: :mod:`attacks.search.lagrangian` (the
default), :mod:`attacks.search.binary` (the paper's). Each owns its spec section
(:mod:`attacks.search_spec`), its run and where the refine starts; the engine
(:mod:`attacks.engine`) picks one by ``spec.search.mode`` from
:data:`attacks.search.base.STRATEGIES`.
The per-check bookkeeping of one solve: :mod:`attacks.search.tracker`.

This package's ``__init__`` imports nothing, so its modules import each other one way."""
