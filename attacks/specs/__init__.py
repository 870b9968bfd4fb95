"""Example attack specs shipped as TOML: formulations that are none of the built-ins
(``admm-attack specs list`` shows them; :func:`attacks.spec_toml.load_spec` finds them by name)."""
