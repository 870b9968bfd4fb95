"""The linearized ADMM solver: settings, state records, schedules and the loop."""

from admmkit.solver.admm import LinearizedADMM
from admmkit.solver.schedules import ConstantSchedule, SqrtSchedule
from admmkit.solver.settings import ADMMSettings
from admmkit.solver.state import ADMMResult, ADMMState, IterationInfo, IterationStats

__all__ = ["LinearizedADMM", "ADMMSettings", "ADMMResult", "ADMMState", "IterationInfo",
           "IterationStats", "SqrtSchedule", "ConstantSchedule"]
