"""Structured input problems: what discovery found wrong, as records the CLI can act on.

Every finding of discovery is one :class:`Problem`: which subject, visit, file and key it is
about, its *kind* (what part of the run it stops), what is wrong and what was expected. The
command line decides what failed from these fields, never from the message text.

Kinds, and what each stops:

========================  ===============================================================
``KIND_SUBJECT``          the whole subject (bad label, unreadable folder, bad sidecar)
``KIND_VISIT``            one visit's QSM (its GRE images or their metadata)
``KIND_LESION_TABLE``     the subject's lesion table (annotations unusable as a whole)
``KIND_LESION_DROPPED``   one lesion, left out of the lesion table
``KIND_OUTSIDE_SELECTION`` one lesion whose detection visit exists but was not selected
                          (``--session-label``): expected, not a failure
``KIND_NOTE``             nothing: a choice the program made, logged as a warning
========================  ===============================================================
"""

from dataclasses import dataclass

KIND_SUBJECT = 'subject'
KIND_VISIT = 'visit'
KIND_LESION_TABLE = 'lesion-table'
KIND_LESION_DROPPED = 'lesion-dropped'
KIND_OUTSIDE_SELECTION = 'lesion-outside-selection'
KIND_NOTE = 'note'
KINDS = (KIND_SUBJECT, KIND_VISIT, KIND_LESION_TABLE, KIND_LESION_DROPPED,
         KIND_OUTSIDE_SELECTION, KIND_NOTE)


@dataclass(frozen=True)
class Problem:
    """One finding about the input.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`: what the problem stops.
    message : str
        The full sentence shown to the user; it names the file (or the option).
    file : str or None
        The file the problem is in (None for a missing file's folder-level finding).
    subject, session : str or None
        Labels without ``sub-``/``ses-``.
    key : str or None
        The sidecar key, table column or header field at fault.
    expected : str or None
        What a valid value looks like.
    """

    kind: str
    message: str
    file: str | None = None
    subject: str | None = None
    session: str | None = None
    key: str | None = None
    expected: str | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f'unknown problem kind {self.kind!r} (known: {", ".join(KINDS)})')

    def __str__(self):
        return self.message

    @property
    def fatal(self):
        """True unless the problem is a note or an expected omission."""
        return self.kind not in (KIND_NOTE, KIND_OUTSIDE_SELECTION)

    def located(self, *, subject=None, session=None, kind=None):
        """A copy with the subject, session or kind filled in (those already set are kept)."""
        return Problem(kind=kind or self.kind, message=self.message, file=self.file,
                       subject=self.subject if self.subject is not None else subject,
                       session=self.session if self.session is not None else session,
                       key=self.key, expected=self.expected)


class InputError(ValueError):
    """An input file is missing, inconsistent or unusable; the message names the file.

    Parameters
    ----------
    message : str
        The sentence for the user (names the file).
    kind : str, optional
        :data:`KINDS` entry; ``KIND_VISIT`` by default (where it is raised decides).
    file, key, expected, subject, session : str, optional
        As :class:`Problem`.

    Attributes
    ----------
    problem : Problem
        The structured record (the first one when several were found).
    problems : list of Problem
        Every record (:meth:`from_problems` gathers several).
    """

    def __init__(self, message, *, kind=KIND_VISIT, file=None, key=None, expected=None,
                 subject=None, session=None):
        super().__init__(message)
        self.problem = Problem(kind=kind, message=str(message),
                               file=None if file is None else str(file), subject=subject,
                               session=session, key=key, expected=expected)
        self.problems = [self.problem]

    @classmethod
    def from_problems(cls, problems):
        """One error holding several problems; its message joins theirs with ``'; '``."""
        problems = list(problems)
        error = cls('; '.join(p.message for p in problems), kind=problems[0].kind)
        error.problem, error.problems = problems[0], problems
        return error


def note(message, *, file=None, key=None, subject=None, session=None):
    """A non-fatal :class:`Problem` (a choice the program made)."""
    return Problem(kind=KIND_NOTE, message=message, file=None if file is None else str(file),
                   key=key, subject=subject, session=session)
