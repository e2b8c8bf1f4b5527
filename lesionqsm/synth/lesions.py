"""MS lesions: shape, placement in white matter, and susceptibility and volume over lesion age.

A lesion is a star-shaped blob: a unit sphere whose radius is modulated by a smooth random
function of direction, stretched by an aspect ratio, rotated, and scaled so that its volume is
the paper's volume trajectory times a lesion-level factor.  It shrinks about its centre with age
(shape kept).  The χ model of a lesion at one visit, relative to the white matter it replaced:

    δ(age) = trajectory.mean_susceptibility_ppb(age, rim)       (the paper's Table)
             + b_patient + b_lesion + β_edss (EDSS − 1.4) + ε_visit       (ppb)

applied as a uniform offset over a rim− lesion.  A rim+ lesion gets a paramagnetic shell: its
voxels within ``RIM_WIDTH_MM`` of the edge are ``rim_contrast_ppb`` above its core, and the core
is lowered so that the *mean* over the lesion still equals δ (see :func:`lesion_offsets`).
"""

from dataclasses import dataclass

import numpy as np

from lesionqsm.synth import trajectory
from lesionqsm.synth.phantom import LABEL, head_coordinates, label_points, shape_block

#: Thickness of the paramagnetic rim of rim+ lesions, and of the enhancing shell, in mm.
RIM_WIDTH_MM = 1.5
#: Random-effect standard deviations of lesion χ (ppb): patient, lesion, visit residual.
SD_PATIENT_PPB = 2.5
SD_LESION_PPB = 4.0
SD_RESIDUAL_PPB = 2.0
#: Effect of EDSS on lesion χ (ppb per EDSS point, centred at the paper's mean EDSS 1.4).
EDSS_EFFECT_PPB = 1.0
EDSS_CENTRE = 1.4
#: Log-normal SD of the lesion-level volume factor.
SD_LOG_VOLUME = 0.3
#: Mean rim-minus-core χ of rim+ lesions (ppb); each lesion draws U(0.7, 1.3) times this.
RIM_CONTRAST_PPB = 30.0
#: Roughness of the lesion outline (relative radius modulation).
ROUGHNESS = 0.15

_DIRECTIONS = None


def _fibonacci_directions(n=2000):
    global _DIRECTIONS
    if _DIRECTIONS is None:
        i = np.arange(n) + 0.5
        polar = np.arccos(1 - 2 * i / n)
        azimuth = np.pi * (1 + 5**0.5) * i
        _DIRECTIONS = np.stack([np.cos(azimuth) * np.sin(polar),
                                np.sin(azimuth) * np.sin(polar), np.cos(polar)], axis=1)
    return _DIRECTIONS


def _random_rotation(rng):
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


@dataclass
class Lesion:
    """One MS lesion of one patient (geometry in baseline head coordinates, mm).

    Attributes
    ----------
    lesion_id : int
        Label value in the lesion maps (unique within the patient, from 1).
    rim : {'positive', 'negative'}
    enhancement : {'nodular', 'shell'}
        Gd-enhancement pattern at the detection visit.
    detected_visit : int
        Index (0-based) of the visit at which the lesion first appears, enhancing.
    centre : ndarray (3,)
    rotation : ndarray (3, 3)
        Columns: the lesion's axes in head coordinates.
    aspect : ndarray (3,)
        Semi-axis ratios, geometric mean 1.
    shape_matrix, shape_vector : ndarray
        Coefficients of the outline modulation ``exp(r (uᵀ S u + (v · u)³))``.
    volume_factor : float
        Lesion-level multiplier of the population volume trajectory.
    offset_ppb : float
        Lesion random intercept of χ (ppb).
    rim_contrast_ppb : float
        Rim minus core χ (ppb); 0 for rim− lesions.
    location : {'periventricular', 'deep'}
    volume_scale : float
        Preset-level multiplier of volumes (1 for demo and paper).
    """

    lesion_id: int
    rim: str
    enhancement: str
    detected_visit: int
    centre: np.ndarray
    rotation: np.ndarray
    aspect: np.ndarray
    shape_matrix: np.ndarray
    shape_vector: np.ndarray
    volume_factor: float
    offset_ppb: float
    rim_contrast_ppb: float
    location: str = 'deep'
    volume_scale: float = 1.0

    def outline(self, u):
        """Relative radius of the outline along unit directions ``u`` (..., 3)."""
        quad = np.einsum('...i,ij,...j->...', u, self.shape_matrix, u)
        cubic = (u @ self.shape_vector) ** 3
        return np.exp(ROUGHNESS * (quad + cubic))

    def model_volume_mm3(self, age_years):
        """Volume (mm³) at a lesion age: trajectory × lesion factor × preset scale."""
        return (float(trajectory.mean_volume_mm3(age_years, self.rim)) * self.volume_factor
                * self.volume_scale)

    def radius_scale(self, age_years):
        """Scale ``a`` (mm) such that the lesion is ``rho <= a`` and has the model volume."""
        mean_cube = float(np.mean(self.outline(_fibonacci_directions()) ** 3))
        volume = self.model_volume_mm3(age_years)
        return (3.0 * volume / (4.0 * np.pi * mean_cube)) ** (1.0 / 3.0)

    def extent(self, age_years=0.0):
        """Radius (mm) of a sphere around the centre that contains the lesion."""
        peak = float(np.max(self.outline(_fibonacci_directions())))
        return self.radius_scale(age_years) * float(np.max(self.aspect)) * peak

    def rho(self, x, y, z):
        """Outline-normalised distance from the centre (mm); the lesion is ``rho <= a(age)``."""
        d = [x - self.centre[0], y - self.centre[1], z - self.centre[2]]
        q = [(self.rotation[0, i] * d[0] + self.rotation[1, i] * d[1]
              + self.rotation[2, i] * d[2]) / self.aspect[i] for i in range(3)]
        r = np.sqrt(q[0] ** 2 + q[1] ** 2 + q[2] ** 2) + 1e-6
        u = np.stack([q[0] / r, q[1] / r, q[2] / r], axis=-1)
        return (r / self.outline(u)).astype(np.float32)


def draw_lesion(rng, *, lesion_id, rim, enhancement, detected_visit, volume_scale=1.0):
    """Random geometry and random effects of one lesion (centre set later by placement)."""
    s = rng.normal(size=(3, 3))
    s = (s + s.T) / 2
    s -= np.eye(3) * np.trace(s) / 3
    s /= np.linalg.norm(s) + 1e-12
    v = rng.normal(size=3)
    v *= 0.7 / np.linalg.norm(v)
    aspect = np.array([1.0, rng.uniform(0.8, 1.1), rng.uniform(0.65, 0.95)])
    aspect /= np.prod(aspect) ** (1 / 3)
    return Lesion(
        lesion_id=int(lesion_id), rim=rim, enhancement=enhancement,
        detected_visit=int(detected_visit), centre=np.zeros(3),
        rotation=_random_rotation(rng), aspect=aspect, shape_matrix=s, shape_vector=v,
        volume_factor=float(np.clip(np.exp(rng.normal(0.0, SD_LOG_VOLUME)), 0.5, 2.0)),
        offset_ppb=float(rng.normal(0.0, SD_LESION_PPB)),
        rim_contrast_ppb=(float(RIM_CONTRAST_PPB * rng.uniform(0.7, 1.3))
                          if rim == 'positive' else 0.0),
        volume_scale=float(volume_scale),
    )


def _neighbourhood(lesion, margin_mm, step_mm=1.0):
    """Points (head mm) within ``rho <= a(0) + margin`` of a lesion, and their rho."""
    extent = lesion.extent(0.0) + margin_mm * float(np.max(lesion.aspect))
    n = int(np.ceil(extent / step_mm))
    ax = np.arange(-n, n + 1) * step_mm
    x, y, z = np.meshgrid(ax + lesion.centre[0], ax + lesion.centre[1], ax + lesion.centre[2],
                          indexing='ij')
    return x, y, z, lesion.rho(x, y, z)


def place_lesions(head, lesions, rng, *, z_range, max_tries=4000):
    """Place lesions in white matter, half periventricular and half in deep white matter.

    A position is accepted when every point within 2 mm (outline-normalised) of the lesion at
    its largest (at enhancement) is white matter, it stays 8 mm clear of the patient's other
    lesions, and for a periventricular lesion a ventricle lies within 2–6 mm of its edge (deep:
    none within 10 mm).  Sets ``centre`` and ``location`` in place.

    Parameters
    ----------
    head : HeadPhantom
    lesions : list of Lesion
    rng : numpy.random.Generator
    z_range : tuple of 2 float
        Allowed z (mm, head coordinates) of the lesion centres: inside the GRE slab.
    max_tries : int, optional

    Raises
    ------
    RuntimeError
        If a lesion cannot be placed after ``max_tries`` candidate positions.
    """
    placed = []
    wm = LABEL['wm']
    ventricle = LABEL['ventricle']
    sx, sy, _ = head.scale
    for index, lesion in enumerate(lesions):
        want = 'periventricular' if index % 2 == 0 else 'deep'
        radius = lesion.extent(0.0)
        a0 = lesion.radius_scale(0.0)
        for _ in range(max_tries):
            if want == 'periventricular':
                centre = np.array([rng.uniform(-30, 30) * sx, rng.uniform(-40, 35) * sy,
                                   rng.uniform(*z_range)])
            else:
                centre = np.array([rng.uniform(-45, 45) * sx, rng.uniform(-60, 50) * sy,
                                   rng.uniform(*z_range)])
            if any(np.linalg.norm(centre - other.centre) < radius + other.extent(0.0) + 8.0
                   for other in placed):
                continue
            lesion.centre = centre
            x, y, z, rho = _neighbourhood(lesion, 10.0)
            labels = label_points(head, x, y, z)
            if not np.all(labels[rho <= a0 + 2.0] == wm):
                continue
            near_ventricle = labels[rho <= a0 + 6.0] == ventricle
            if want == 'periventricular' and not near_ventricle.any():
                continue
            if want == 'deep' and np.any(labels[rho <= a0 + 10.0] == ventricle):
                continue
            lesion.location = want
            placed.append(lesion)
            break
        else:
            raise RuntimeError(f'could not place lesion {lesion.lesion_id} ({want}) in white '
                               f'matter after {max_tries} tries')
    return lesions


def paint_lesions(lesions, grid, motion, ages):
    """Lesion labels on a scanner grid at one visit.

    Parameters
    ----------
    lesions : list of Lesion
        All lesions of the patient.
    grid : phantom.Grid
    motion : (4, 4) ndarray
        Baseline-head to visit-head rigid transform (world mm).
    ages : dict
        lesion_id -> lesion age (years) at this visit, for the lesions present (detected at or
        before it); absent lesions are not painted.

    Returns
    -------
    ids : int16 ndarray
        lesion_id per voxel, 0 outside lesions.
    depth : float32 ndarray
        Outline-normalised depth below the lesion edge (mm), ``a(age) - rho``; 0 outside.
        Voxels with ``depth < RIM_WIDTH_MM`` are the rim / enhancing shell.
    ever : bool ndarray
        Voxels inside any of the patient's lesions at any visit (each at its largest).
    """
    ids = np.zeros(grid.shape, dtype=np.int16)
    depth = np.zeros(grid.shape, dtype=np.float32)
    ever = np.zeros(grid.shape, dtype=bool)
    for lesion in lesions:
        block = shape_block(grid, motion, lesion.centre, lesion.extent(0.0))
        if block is None:
            continue
        x, y, z = head_coordinates(grid, motion, block)
        rho = lesion.rho(x, y, z)
        ever[block] |= rho <= lesion.radius_scale(0.0)
        if lesion.lesion_id not in ages:
            continue
        a = lesion.radius_scale(ages[lesion.lesion_id])
        inside = rho <= a
        ids[block][inside] = lesion.lesion_id
        depth[block][inside] = a - rho[inside]
    return ids, depth, ever


def lesion_offsets(target_ppb, rim_contrast_ppb, rim_fraction):
    """Core and rim χ offsets (ppb) whose voxel-weighted mean is ``target_ppb``.

    Parameters
    ----------
    target_ppb : float
        Required mean offset over the lesion.
    rim_contrast_ppb : float
        Rim minus core (0: uniform lesion).
    rim_fraction : float
        Fraction of the lesion's voxels in the rim, in [0, 1].

    Returns
    -------
    core_ppb, rim_ppb : float
    """
    core = target_ppb - rim_fraction * rim_contrast_ppb
    return core, core + rim_contrast_ppb


def lesion_r2star(delta_ppb):
    """R2* (1/s) of lesion tissue with χ offset ``delta_ppb`` from white matter.

    Demyelination lowers R2* below white matter's 20 /s; iron raises it by about 0.1 /s per
    ppb (the slope from white matter to the globus pallidus in :data:`phantom.PROPERTIES`).
    """
    return np.maximum(17.0 + 0.1 * np.asarray(delta_ppb, dtype=np.float32), 5.0)


#: Lesion tissue: PD, T1 (ms), T2 (ms); T1 of enhancing tissue after gadolinium (ms).
LESION_PD = 0.78
LESION_T1_MS = 1150.0
LESION_T2_MS = 140.0
ENHANCING_T1_MS = 550.0
