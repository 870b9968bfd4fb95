"""``admm-attack explain`` (interpretability maps and scores): registered on :data:`cli.main.app`."""
