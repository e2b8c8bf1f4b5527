"""The science packages import without the workflow engine (nipype), in a fresh interpreter."""

import subprocess
import sys

PURE_PACKAGES = ['lesionqsm.qsm', 'lesionqsm.lesions', 'lesionqsm.registration',
                 'lesionqsm.stats', 'lesionqsm.synth', 'lesionqsm.options', 'lesionqsm.morphology']


def test_pure_packages_do_not_import_nipype():
    code = ('import importlib, sys\n'
            f'for name in {PURE_PACKAGES!r}:\n'
            '    importlib.import_module(name)\n'
            'from lesionqsm.qsm import reconstruct_session, QSMOptions\n'
            'from lesionqsm.lesions import LesionOptions, measure_subject\n'
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'nipype'))\n")
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == '[]', result.stdout
