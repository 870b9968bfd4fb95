"""``admm-attack eval`` (the paper's evaluation protocol): registered on :data:`cli.main.app`."""
