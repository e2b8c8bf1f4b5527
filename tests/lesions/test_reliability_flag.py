"""A lesion measured where χ is not reliable is flagged in the lesion table (chi_reliable)."""

import datetime

import numpy as np

from lesionqsm.lesions import measure_subject
from lesionqsm.lesions.measures import SubjectMaps


def _maps(centre, reliable):
    shape = (24, 24, 24)
    grid = np.indices(shape).transpose(1, 2, 3, 0)
    brain = np.zeros(shape, bool)
    brain[2:-2, 2:-2, 2:-2] = True
    fraction = (np.linalg.norm(grid - np.asarray(centre), axis=-1) <= 2.5).astype(np.float32)
    chi = np.where(fraction > 0.5, 0.03, -0.01).astype(np.float32) * brain
    return SubjectMaps(chi={'01': chi}, fractions={'01': {1: fraction}}, volumes={'01': {1: 60.0}},
                       brain=brain, csf=None, veins=None, voxel_size=(1.0, 1.0, 1.0),
                       reliable=reliable)


def _flag(maps):
    rows = measure_subject('sub-01', [{'lesion_id': '1', 'detected_session': '01'}],
                           {'01': datetime.datetime(2020, 1, 1)}, maps)
    return rows[0]['chi_reliable']


def test_lesion_inside_the_reliable_mask_is_reliable():
    brain = np.zeros((24, 24, 24), bool)
    brain[2:-2, 2:-2, 2:-2] = True
    reliable = brain.copy()
    reliable[2, :, :] = reliable[-3, :, :] = False  # the outer layer on one axis
    assert _flag(_maps((12, 12, 12), reliable)) == 'true'


def test_lesion_reaching_the_unreliable_layer_is_flagged():
    brain = np.zeros((24, 24, 24), bool)
    brain[2:-2, 2:-2, 2:-2] = True
    reliable = brain.copy()
    reliable[2, :, :] = False
    # centre 2 voxels from the unreliable layer, radius 2.5: the lesion reaches it
    assert _flag(_maps((4, 12, 12), reliable)) == 'false'


def test_without_a_reliable_mask_the_flag_is_not_available():
    assert _flag(_maps((12, 12, 12), None)) == 'n/a'
