"""This project's attacks in the calling conventions of other libraries (docs/adapters.md).

- :class:`TorchattacksAdapter` — torchattacks 3.5: ``atk(images, labels)`` returns the
  adversarial tensor; targeted-mode setters, ``set_normalization_used``, ``save``.
- :class:`FoolboxAttack` — foolbox 3: ``attack(fmodel, inputs, criterion, epsilons=...)``
  returns ``(raw, clipped, success)`` for a ``foolbox.PyTorchModel``.
- :class:`ArtAttack` — the Adversarial Robustness Toolbox: ``generate(x, y=None)`` on numpy
  arrays for a ``PyTorchClassifier`` (clip values, preprocessing, targeted or not).

None of these libraries is imported here: the adapters only follow their conventions.
"""

from attacks.adapters.art import ArtAttack
from attacks.adapters.foolbox import FoolboxAttack
from attacks.adapters.torchattacks import TorchattacksAdapter

__all__ = ["ArtAttack", "FoolboxAttack", "TorchattacksAdapter"]
