"""Options of the group level (the ``group`` section of ``--config``), defaults defined once."""

from dataclasses import dataclass

from ..options import option
from .growth_curve import DEFAULT_COVARIATES, INFERENCE, TABLE_AGES

__all__ = ['GroupModelOptions']


@dataclass(frozen=True)
class GroupModelOptions:
    """Everything the group level decides: the models, their inference and their outputs.

    Precedence: a command-line flag (``--poly-degree``, ``--covariates``, ``--inference``)
    over the ``group`` section of ``--config`` over these defaults (the paper's model).
    """

    degree: int = option(8, low=1, high=12,
                         doc='degree of the orthogonal polynomial in lesion age (paper: 8)')
    covariates: tuple[str, ...] = option(
        DEFAULT_COVARIATES, doc='covariates of the susceptibility model: baseline_volume, '
        'volume_change, edss, age, disease_duration, treatment_duration or any column of the '
        'lesion tables or participants.tsv (labels such as sex F/M become factors)')
    categorical: tuple[str, ...] = option(
        (), doc='covariates coded as numbers that are categories (factors, treatment contrasts)')
    binning: str = option('octiles', choices=('octiles', 'edges', 'points', 'none'),
                          doc='lesion-age time points: octiles of the distinct ages (paper), '
                              'bin_edges, the listed age_points, or the ages as they are')
    bin_edges: tuple[float, ...] | None = option(
        None, doc="increasing bin edges in years, for binning 'edges'")
    age_points: tuple[float, ...] | None = option(
        None, doc="representative ages in years (nearest one per visit), for binning 'points'")
    basis: str = option('distinct', choices=('distinct', 'visits'),
                        doc='build poly() on the distinct binned ages (paper) or on every visit')
    reference_rim: str = option('positive', choices=('positive', 'negative'),
                                doc='reference rim group of the contrasts')
    random_slopes: bool = option(False, doc='random slopes on linear lesion age')
    inference: str = option('satterthwaite', choices=INFERENCE,
                            doc='tests and CIs: Satterthwaite t (lmerTest) or Wald z')
    table_ages: tuple[float, ...] = option(TABLE_AGES,
                                           doc='lesion ages (years) of the fitted-means tables')
    volume_degree: int = option(3, low=1, high=12, doc='degree of the volume model (paper: 3)')
    volume_lesion_effect: bool = option(
        False, doc='random intercept per lesion in the volume model too (paper: patient only)')
    figures: bool = option(True, doc='write the trajectory figures (PNG and SVG)')
    min_patients: int = option(3, low=1, doc='fewest patients with usable rows')
    min_lesions: int = option(4, low=1, doc='fewest lesions with usable rows')

    def check(self):
        """Cross-field rules; ValueError names the fields."""
        if self.binning == 'edges' and not self.bin_edges:
            raise ValueError("binning 'edges' needs bin_edges (a list of ages in years)")
        if self.binning == 'points' and not self.age_points:
            raise ValueError("binning 'points' needs age_points (a list of ages in years)")
        if self.bin_edges and any(b <= a for a, b in zip(self.bin_edges[:-1],
                                                         self.bin_edges[1:], strict=True)):
            raise ValueError('bin_edges must increase')
        if not self.table_ages or min(self.table_ages) < 0:
            raise ValueError('table_ages must list one or more lesion ages >= 0 (years)')
        twice = sorted({c for c in self.covariates if self.covariates.count(c) > 1})
        if twice:
            raise ValueError(f'covariates lists {", ".join(twice)} more than once')

    def model_kwargs(self):
        """Keyword arguments of :func:`.growth_curve.fit_growth_curve` shared by every model."""
        binning = list(self.age_points) if self.binning == 'points' else self.binning
        return dict(binning=binning, bin_edges=None if self.bin_edges is None
                    else list(self.bin_edges), basis=self.basis,
                    reference_rim=self.reference_rim, inference=self.inference,
                    min_patients=self.min_patients, min_lesions=self.min_lesions)
