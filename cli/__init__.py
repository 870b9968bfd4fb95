"""``admm-attack``: the command line of the structured-attack toolkit.

Commands (``admm-attack --help``): ``solve`` runs an attack spec on a model and a dataset and
writes metrics, examples, figures and provenance to a run directory (resumable); ``specs``
lists, shows and checks attack specs as TOML; ``models`` and ``datasets`` list what is bundled.
See docs/cli.md and docs/tutorial-spec.md.
"""
