"""Write the host's effective pip configuration as a pip.conf for use inside an image build.

Usage: ``python3 .ci/pip_build_conf.py OUT_PIP_CONF [--constraint FILE ...] [--wheelhouse DIR]``

Reads what ``pip config list`` reports on this machine (files and ``PIP_*`` variables, the
variables winning as they do for pip), writes it to OUT_PIP_CONF, and prints every local path
the configuration names (CA bundle, ``file://`` indexes, find-links folders, constraint files),
one per line, so that the build script can bind-mount each read-only at the same path.
"""

import argparse
import subprocess
import sys
from pathlib import Path


def effective_config():
    """Return ``{section: {key: value}}`` as pip on this machine would use it."""
    out = subprocess.run([sys.executable, '-m', 'pip', 'config', 'list'], check=True,
                         capture_output=True, text=True).stdout
    from_files, from_env = {}, {}
    for line in out.splitlines():
        name, sep, value = line.partition('=')
        if not sep or '.' not in name:
            continue
        section, key = name.split('.', 1)
        value = value.strip().strip('\'"')
        if section == ':env:':
            from_env[key] = value
        else:
            from_files.setdefault(section, {})[key] = value
    config = from_files
    config.setdefault('global', {}).update(from_env)  # PIP_* variables override the files
    return config


def local_paths(key, value):
    """Absolute local paths among the whitespace-separated tokens of one setting.

    A ``file://`` index (``.../simple``) links to its files relative to itself (``../../files``),
    so for an index setting the folder above it is the one to mount.
    """
    paths = []
    for token in value.split():
        path = token[len('file://'):] if token.startswith('file://') else token
        if not path.startswith('/') or not Path(path).exists():
            continue
        if key in ('index-url', 'extra-index-url'):
            path = str(Path(path).parent)
        paths.append(path)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out', type=Path)
    parser.add_argument('--constraint', action='append', default=[],
                        help='an extra constraint file (same path inside the build)')
    parser.add_argument('--wheelhouse', help='a folder holding every wheel the build needs: '
                                             'pip then installs from it alone (--no-index)')
    args = parser.parse_args(argv)
    config = effective_config()
    if args.wheelhouse:
        known = config['global'].get('find-links', '').split()
        config['global']['find-links'] = ' '.join([args.wheelhouse] + known)
        config['global']['no-index'] = 'true'
    if args.constraint:
        known = config['global'].get('constraint', '').split()
        config['global']['constraint'] = ' '.join(known + args.constraint)
    lines, mounts = [], []
    for section, values in sorted(config.items()):
        lines.append(f'[{section}]')
        for key, value in sorted(values.items()):
            lines.append(f'{key} = {value}')
            mounts += [p for p in local_paths(key, value) if p not in mounts]
    args.out.write_text('\n'.join(lines) + '\n')
    print('\n'.join(mounts))
    return 0


if __name__ == '__main__':
    sys.exit(main())
