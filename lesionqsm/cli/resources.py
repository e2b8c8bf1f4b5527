"""The CPUs and memory this process may use, for the defaults of the execution options."""

import os
from pathlib import Path

#: ``--omp-nthreads`` never defaults above this: the FFTs of the heaviest nodes (background
#: removal and MEDI, ``scipy.fft`` with ``workers=-1``) gain little beyond 8 threads on these
#: image sizes, and a per-node SLURM job asks for that many CPUs.
MAX_DEFAULT_OMP_NTHREADS = 8


def available_cpus():
    """Number of CPUs this process may run on (its affinity mask, e.g. a SLURM allocation)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_omp_nthreads(nprocs):
    """Threads of the heaviest node by default: every CPU of the run, at most 8.

    Parameters
    ----------
    nprocs : int
        CPUs the run may use (``--nprocs``).
    """
    return max(1, min(int(nprocs), MAX_DEFAULT_OMP_NTHREADS))


def available_memory_gb(meminfo='/proc/meminfo', cgroup='/sys/fs/cgroup'):
    """Memory this process can still use, in GB (2**30 bytes).

    ``MemAvailable`` of ``/proc/meminfo`` (free memory plus the page cache that can be
    dropped), lowered to the room left under a cgroup (v2) memory limit if one is set, as in
    a container or a SLURM job.

    Parameters
    ----------
    meminfo : str or Path, optional
        The kernel's memory report.
    cgroup : str or Path, optional
        Mount point of the cgroup v2 hierarchy seen by this process.

    Returns
    -------
    float or None
        None when neither source is readable (not Linux).
    """
    available = None
    try:
        for line in Path(meminfo).read_text().splitlines():
            if line.startswith('MemAvailable:'):
                available = int(line.split()[1]) * 1024  # kB
                break
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path(cgroup, 'memory.max').read_text().strip()
        used = int(Path(cgroup, 'memory.current').read_text().strip())
        if limit != 'max':
            room = max(int(limit) - used, 0)
            available = room if available is None else min(available, room)
    except (OSError, ValueError):
        pass
    return None if available is None else available / 2**30
