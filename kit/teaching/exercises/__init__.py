"""Exercises that check themselves: the student writes one step of an algorithm, a check runs it
beside kit's own implementation on random inputs and says what to look at where it differs.

    from kit.teaching import exercises
    exercises.check_nmi(my_nmi)          # -> a Result: passed, and one line per difference found

Each check catches what the student's function raises and reports it, so a notebook with an
unfinished exercise still runs top to bottom. One module per exercise's concept, each with its
checks and its solutions (the notebooks show the same code in a hidden block):

    sampler.py   02, DeepCluster: the uniform sampler over pseudo-labels
    nmi.py       02, DeepCluster: NMI written with NumPy
    memory.py    03, ODC: the momentum update of the samples memory, the small-cluster fix
    churn.py     05, the churn notebook's homework, answers read off its table
    common.py    the Result every check returns, and what the checks share

tests/test_exercises.py shows each check passes with its solution and fails, with a one-line reason,
for each planted mistake (a sampler that is not shuffled or not random, an NMI that calls a
library...).
"""
from .churn import (
             CHURN_LOOK_AT,
             CHURN_QUESTIONS,
             KNN_TOLERANCE,
             NOISE_BAND,
             ODC_MOMENTA,
             check_churn,
             solution_churn,
)
from .common import TRIALS, Result
from .memory import (
             check_momentum_update,
             check_small_cluster_fix,
             solution_momentum_update,
             solution_small_cluster_fix,
)
from .nmi import LIBRARIES, check_nmi, solution_nmi
from .sampler import GENERATORS, check_uniform_sampler, solution_uniform_sampler

SOLUTIONS = {
    check_uniform_sampler: solution_uniform_sampler,
    check_nmi: solution_nmi,
    check_momentum_update: solution_momentum_update,
    check_small_cluster_fix: solution_small_cluster_fix,
}

__all__ = [
    "CHURN_LOOK_AT",
    "CHURN_QUESTIONS",
    "GENERATORS",
    "KNN_TOLERANCE",
    "LIBRARIES",
    "NOISE_BAND",
    "ODC_MOMENTA",
    "SOLUTIONS",
    "TRIALS",
    "Result",
    "check_churn",
    "check_momentum_update",
    "check_nmi",
    "check_small_cluster_fix",
    "check_uniform_sampler",
    "solution_churn",
    "solution_momentum_update",
    "solution_nmi",
    "solution_small_cluster_fix",
    "solution_uniform_sampler",
]
