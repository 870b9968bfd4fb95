"""Interpretability tools of the StrAttack paper (section 6, appendix E): the adversarial
saliency map (ASM, eq. 61), class activation maps (CAM, Grad-CAM), the Boolean maps B at a
percentile threshold ν and the interpretability score IS (eq. 23) with its curve against ν.
The comparison of several attacks and its files: :mod:`attacks.interpret.report`.
See docs/interpretability.md."""

from attacks.interpret.cam import (GapHead, class_activation_map, default_cam_layer,
                                   find_gap_head, gap_cam, grad_cam, last_conv, normalize_maps)
from attacks.interpret.saliency import (adversarial_saliency_map, asm_from_gradients,
                                        logit_gradients, percentile_mask)
from attacks.interpret.score import (DEFAULT_NUS, MAPS, REFERENCE, ISCurve, example_maps,
                                     interpretability_score, is_curve, mean_score, result_maps,
                                     results_is_curve, write_csv)

__all__ = ["adversarial_saliency_map", "asm_from_gradients", "logit_gradients",
           "percentile_mask", "class_activation_map", "grad_cam", "last_conv", "GapHead",
           "find_gap_head", "gap_cam", "example_maps", "MAPS",
           "default_cam_layer", "normalize_maps", "interpretability_score", "is_curve",
           "results_is_curve", "result_maps", "mean_score", "ISCurve", "DEFAULT_NUS",
           "REFERENCE", "write_csv"]
