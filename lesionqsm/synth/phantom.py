"""An analytic head phantom: tissue shapes in head coordinates and their MR properties at 3 T.

The head is built from ellipsoids and capsules (cylinders with round ends) in *head
coordinates*: RAS+ millimetres with the origin near the centre of the brain, equal to world
(scanner) coordinates at the baseline visit.  Shapes are painted in order, a later shape
overwriting an earlier one, so any point in space gets exactly one tissue label.  Because the
shapes are analytic, the phantom can be evaluated at any point, after any rigid head motion,
without interpolation: motion moves the head, the grids stay fixed in the scanner.

Tissue properties (susceptibility relative to CSF, R2*, proton density, T1 and T2 at 3 T) are
literature values rounded to the precision that matters here:

=============  ==========  ========  =====  =======  =======
tissue         χ (ppm)     R2* (/s)  PD     T1 (ms)  T2 (ms)
=============  ==========  ========  =====  =======  =======
air            +9.40       0         0      --       --
scalp          0.00        35        0.80   400      60
skull (bone)   -2.00       250       0.10   300      5
CSF            0.00        3         1.00   4000     1500
grey matter    +0.010      15        0.80   1330     110
white matter   -0.020 [*]  20        0.69   830      80
caudate        +0.070      25        0.82   1250     90
putamen        +0.090      30        0.82   1200     85
pallidum       +0.180      40        0.78   1000     75
thalamus       +0.030      22        0.76   1050     85
vein           +0.350      45        0.85   1650     60
venous sinus   +0.450      45        0.85   1650     60
=============  ==========  ========  =====  =======  =======

[*] White matter χ carries a smooth spatial modulation of ±5 ppb (:func:`wm_chi_modulation`),
a stand-in for the fibre-orientation effects that the NAWM reference of the paper offsets.

References: Deistung A et al. NeuroImage 2013;65:299 and Li W et al. NeuroImage 2011;55:1645
(χ of deep grey nuclei relative to CSF); Peran P et al. Hum Brain Mapp 2007;28:1263 (R2* at
3 T); Wansapura JP et al. JMRI 1999;9:531 and Stanisz GJ et al. MRM 2005;54:507 (T1, T2 at 3 T);
Wang Y, Liu T. MRM 2015;73:82 (air-tissue Δχ ≈ 9.4 ppm, deoxygenated blood ≈ 0.45 ppm).
"""

from dataclasses import dataclass, field

import numpy as np

#: Tissue names in label order; the label of a tissue is its index.
TISSUES = ('air', 'scalp', 'skull', 'csf', 'gm', 'wm', 'ventricle', 'caudate', 'putamen',
           'pallidum', 'thalamus', 'vein', 'sinus', 'air_cavity')
LABEL = {name: i for i, name in enumerate(TISSUES)}

#: χ relative to CSF (ppm), R2* (1/s), PD (fraction of water), T1 (ms), T2 (ms) per tissue.
PROPERTIES = {
    'air': (9.40, 0.0, 0.0, 1000.0, 1.0),
    'scalp': (0.0, 35.0, 0.80, 400.0, 60.0),
    'skull': (-2.0, 250.0, 0.10, 300.0, 5.0),
    'csf': (0.0, 3.0, 1.00, 4000.0, 1500.0),
    'gm': (0.010, 15.0, 0.80, 1330.0, 110.0),
    'wm': (-0.020, 20.0, 0.69, 830.0, 80.0),
    'ventricle': (0.0, 3.0, 1.00, 4000.0, 1500.0),
    'caudate': (0.070, 25.0, 0.82, 1250.0, 90.0),
    'putamen': (0.090, 30.0, 0.82, 1200.0, 85.0),
    'pallidum': (0.180, 40.0, 0.78, 1000.0, 75.0),
    'thalamus': (0.030, 22.0, 0.76, 1050.0, 85.0),
    'vein': (0.350, 45.0, 0.85, 1650.0, 60.0),
    'sinus': (0.450, 45.0, 0.85, 1650.0, 60.0),
    'air_cavity': (9.40, 0.0, 0.0, 1000.0, 1.0),
}
#: χ of air relative to CSF (ppm): the zero of the air-referenced map used for the field.
CHI_AIR_PPM = PROPERTIES['air'][0]
#: T1 of blood-filled tissue after gadolinium (ms): veins and sinuses enhance on T1w+Gd.
T1_BLOOD_GD_MS = 350.0


def property_table(index):
    """Per-label lookup array of one tissue property.

    Parameters
    ----------
    index : int
        0 χ (ppm, relative to CSF), 1 R2* (1/s), 2 PD, 3 T1 (ms), 4 T2 (ms).

    Returns
    -------
    float32 ndarray, shape (len(TISSUES),)
    """
    return np.array([PROPERTIES[name][index] for name in TISSUES], dtype=np.float32)


def wm_chi_modulation(x, y, z):
    """Smooth spatial variation of white-matter χ around its mean, in ppm (±5 ppb).

    Parameters
    ----------
    x, y, z : ndarray
        Head coordinates in mm.

    Returns
    -------
    float32 ndarray
        Added to the white-matter χ of :data:`PROPERTIES`; zero mean over a head-sized region.
    """
    return (0.005 * np.sin(2 * np.pi * x / 90.0 + 0.4) * np.cos(2 * np.pi * y / 110.0 - 0.3)
            * np.cos(2 * np.pi * z / 130.0)).astype(np.float32)


@dataclass(frozen=True)
class Ellipsoid:
    """A (possibly rotated, possibly rippled) ellipsoid of one tissue.

    ``rotation`` columns are the ellipsoid axes in head coordinates.  ``ripple`` modulates the
    radius by ``1 + ripple · sin(9 u_x) sin(9 u_y) sin(9 u_z)`` (u: unit direction from the
    centre), which folds the grey/white boundary into gyri.
    """

    tissue: str
    centre: tuple
    semi_axes: tuple
    rotation: tuple = None
    ripple: float = 0.0

    def extent(self):
        """Radius (mm) of a sphere around the centre that contains the shape."""
        return float(max(self.semi_axes)) * (1.0 + abs(self.ripple))

    def inside(self, x, y, z):
        """Boolean array: which points (head coordinates, mm) lie in the shape."""
        d = [x - self.centre[0], y - self.centre[1], z - self.centre[2]]
        if self.rotation is not None:
            rot = np.asarray(self.rotation)
            d = [rot[0, i] * d[0] + rot[1, i] * d[1] + rot[2, i] * d[2] for i in range(3)]
        q = [d[i] / self.semi_axes[i] for i in range(3)]
        r2 = q[0] ** 2 + q[1] ** 2 + q[2] ** 2
        if not self.ripple:
            return r2 <= 1.0
        r = np.sqrt(r2) + 1e-9
        bound = 1.0 + self.ripple * (np.sin(9 * q[0] / r) * np.sin(9 * q[1] / r)
                                     * np.sin(9 * q[2] / r))
        return r <= bound


@dataclass(frozen=True)
class Capsule:
    """A cylinder with hemispherical ends (a vein segment) from ``p0`` to ``p1``."""

    tissue: str
    p0: tuple
    p1: tuple
    radius: float

    @property
    def centre(self):
        return tuple((np.asarray(self.p0) + np.asarray(self.p1)) / 2)

    def extent(self):
        half = np.linalg.norm(np.subtract(self.p1, self.p0)) / 2
        return float(half + self.radius)

    def inside(self, x, y, z):
        p0 = np.asarray(self.p0, float)
        axis = np.asarray(self.p1, float) - p0
        length2 = float(axis @ axis)
        dx, dy, dz = x - p0[0], y - p0[1], z - p0[2]
        t = np.clip((dx * axis[0] + dy * axis[1] + dz * axis[2]) / length2, 0.0, 1.0)
        return ((dx - t * axis[0]) ** 2 + (dy - t * axis[1]) ** 2
                + (dz - t * axis[2]) ** 2) <= self.radius**2


def _rot_x(deg):
    a = np.deg2rad(deg)
    return ((1, 0, 0), (0, np.cos(a), -np.sin(a)), (0, np.sin(a), np.cos(a)))


@dataclass(frozen=True)
class HeadPhantom:
    """The shapes of one head, in painting order, and its anatomical scaling.

    Use :func:`make_head` to build one.
    """

    shapes: tuple = field(default_factory=tuple)
    scale: tuple = (1.0, 1.0, 1.0)


def make_head(*, scale=(1.0, 1.0, 1.0), ventricle_scale=1.0):
    """Build the head phantom.

    Parameters
    ----------
    scale : tuple of 3 float, optional
        Anatomical scaling of the whole head along x (left-right), y (anterior-posterior) and
        z (inferior-superior); a patient-level variation of head size.
    ventricle_scale : float, optional
        Scaling of the lateral and third ventricles (>1: ventricular enlargement, atrophy).

    Returns
    -------
    HeadPhantom
        Head centred near the origin: outer surface about 150 × 190 × 170 mm, brain about
        124 × 164 × 136 mm.
    """
    sx, sy, sz = (float(v) for v in scale)

    def p(x, y, z):
        return (x * sx, y * sy, z * sz)

    vs = float(ventricle_scale)
    shapes = [
        Ellipsoid('scalp', p(0, -5, -5), p(75, 95, 85)),
        Ellipsoid('skull', p(0, -5, -5), p(70, 90, 80)),
        Ellipsoid('csf', p(0, -5, -3), p(64, 84, 74)),
        Ellipsoid('gm', p(0, -5, 3), p(61, 81, 68)),
        Ellipsoid('wm', p(0, -5, 3), p(55.5, 75.5, 62.5), ripple=0.04),
        # paranasal (frontal) sinus and mastoid air cells: strong background fields
        Ellipsoid('air_cavity', p(0, 80, -24), p(9, 3.5, 6)),
        Ellipsoid('air_cavity', p(-65, -10, -32), p(5, 8, 6)),
        Ellipsoid('air_cavity', p(65, -10, -32), p(5, 8, 6)),
    ]
    for side in (-1, 1):
        shapes += [
            Ellipsoid('caudate', p(side * 18, 9, 11), p(4.5, 11, 7)),
            Ellipsoid('putamen', p(side * 26, 2, 0), p(5, 14, 9)),
            Ellipsoid('pallidum', p(side * 19.5, -1, -2), p(3.5, 8, 5.5)),
            Ellipsoid('thalamus', p(side * 10, -17, 3), p(7, 13, 8)),
        ]
    for side in (-1, 1):
        shapes.append(Ellipsoid('ventricle', p(side * 10.5, -2, 15),
                                tuple(v * vs for v in p(6.5, 27, 8.5)), rotation=_rot_x(-12)))
    shapes.append(Ellipsoid('ventricle', p(0, -6, 1), tuple(v * vs for v in p(1.8, 12, 7))))
    # superior sagittal sinus along the top of the brain, straight sinus, deep veins
    angles = np.linspace(np.deg2rad(15), np.deg2rad(200), 9)
    arc = [(0.0, -5 + 83.5 * np.cos(a), 3 + 70.5 * np.sin(a)) for a in angles]
    for a, b in zip(arc[:-1], arc[1:], strict=True):
        shapes.append(Capsule('sinus', p(*a), p(*b), 3.0 * sx))
    shapes.append(Capsule('sinus', p(0, -38, 10), p(0, -75, -12), 2.2 * sx))
    for side in (-1, 1):
        shapes.append(Capsule('vein', p(side * 2.5, 2, 9), p(side * 2.5, -30, 10), 1.3 * sx))
        shapes.append(Capsule('vein', p(side * 14, 14, 8), p(side * 14, -10, 6), 1.1 * sx))
        shapes.append(Capsule('vein', p(side * 30, 20, 30), p(side * 20, -20, 38), 1.0 * sx))
    return HeadPhantom(shapes=tuple(shapes), scale=(sx, sy, sz))


def label_points(head, x, y, z):
    """Tissue label at arbitrary points.

    Parameters
    ----------
    head : HeadPhantom
    x, y, z : ndarray, same shape
        Head coordinates in mm.

    Returns
    -------
    uint8 ndarray, same shape
        Index into :data:`TISSUES` (0 = air).
    """
    labels = np.zeros(np.shape(x), dtype=np.uint8)
    for shape in head.shapes:
        labels[shape.inside(x, y, z)] = LABEL[shape.tissue]
    return labels


@dataclass(frozen=True)
class Grid:
    """A regular voxel grid in world (scanner) coordinates.

    ``affine`` maps voxel indices (i, j, k) to world RAS+ millimetres, as a NIfTI affine.
    """

    shape: tuple
    affine: np.ndarray

    @property
    def voxel_size(self):
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))


def head_coordinates(grid, motion, block=None):
    """Head coordinates (mm) of the centres of a grid's voxels when the head has moved.

    Parameters
    ----------
    grid : Grid
        The fixed scanner grid.
    motion : (4, 4) ndarray
        Rigid world-to-world transform mapping baseline-head coordinates to the moved head.
    block : tuple of 3 slice, optional
        Sub-block of the grid (default the whole grid); slices with unit step.

    Returns
    -------
    tuple of 3 float32 ndarray
        x, y, z head coordinates, each of the block's shape.
    """
    if block is None:
        block = tuple(slice(0, n) for n in grid.shape)
    vox_to_head = np.linalg.inv(motion) @ grid.affine
    ranges = [np.arange(s.start, s.stop, dtype=np.float64) for s in block]
    i, j, k = np.meshgrid(*ranges, indexing='ij', sparse=True)
    out = []
    for row in range(3):
        m = vox_to_head[row]
        out.append((m[0] * i + m[1] * j + m[2] * k + m[3]).astype(np.float32))
    return tuple(out)


def shape_block(grid, motion, centre, radius):
    """Slices of the grid block that can contain a sphere (head coordinates) after motion.

    Returns None if the sphere misses the grid.
    """
    centre_world = motion @ np.append(np.asarray(centre, float), 1.0)
    centre_vox = np.linalg.solve(grid.affine, centre_world)[:3]
    half = radius / np.asarray(grid.voxel_size) + 1.5
    lo = np.maximum(np.floor(centre_vox - half).astype(int), 0)
    hi = np.minimum(np.ceil(centre_vox + half).astype(int) + 1, grid.shape)
    if np.any(hi <= lo):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def paint_labels(head, grid, motion):
    """Tissue labels of the moved head on a scanner grid (point-sampled at voxel centres).

    Parameters
    ----------
    head : HeadPhantom
    grid : Grid
    motion : (4, 4) ndarray
        Baseline-head to current-head rigid transform (world mm).

    Returns
    -------
    uint8 ndarray, shape ``grid.shape``
        Index into :data:`TISSUES`.
    """
    labels = np.zeros(grid.shape, dtype=np.uint8)
    for shape in head.shapes:
        block = shape_block(grid, motion, shape.centre, shape.extent())
        if block is None:
            continue
        x, y, z = head_coordinates(grid, motion, block)
        inside = shape.inside(x, y, z)
        labels[block][inside] = LABEL[shape.tissue]
    return labels
